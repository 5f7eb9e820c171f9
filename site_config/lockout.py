"""The sign-in lockout (django-axes), by account on an address rather than by account or address.

Axes locks each of its lockout parameters alone: "username" lets anyone lock a person out from
anywhere with five wrong passwords, and "ip_address" locks a whole office behind one NAT (or every
user of a site behind a proxy that is not declared) when one person or script guesses. Here a
person's (account, address) pair is locked after LOGIN_FAILURE_LIMIT failures, so the same person
with the right password on another device or network still gets in; and an address alone only
after LOGIN_ADDRESS_FAILURE_LIMIT failures, across every account, which stops one address spraying
passwords over many accounts without locking an office out over a few mistakes.
"""
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum

# Axes counts each of these alone and locks on the highest count: the pair's, and the address's
# scaled down to the pair's limit (get_failures).
LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]


class AccountOnAddressLockout(AxesDatabaseHandler):
    """Axes' database handler, with the address's failures held to a limit of their own."""

    def get_failures(self, request, credentials=None) -> int:
        pair, address = (attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0
                         for attempts in self.get_user_attempts(request, credentials))
        # On the pair's scale: LOGIN_ADDRESS_FAILURE_LIMIT failures from an address count as AXES_FAILURE_LIMIT.
        return max(pair, address * settings.AXES_FAILURE_LIMIT // settings.LOGIN_ADDRESS_FAILURE_LIMIT)
