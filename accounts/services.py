"""Accounts: API tokens, and sign-up with an activation email (an inactive account until its
signed, expiring link is opened). Written by hand rather than with django-allauth or
django-registration: see the README's "Accounts" section for why."""
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from jobs.exceptions import JobQueueUnavailable

from .emails import SALT
from .models import Activation, ApiToken
from .tasks import send_activation_email

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ActivationFailed(ValueError):
    """The link is expired, altered or for an account that no longer exists."""


def user_register(*, email: str, password: str) -> User | None:
    """Create an inactive account whose username is `email` and, once committed, queue its
    activation email; None, and nothing sent, when the address has an account already.

    Callers answer the same either way, so sign-up does not tell who is registered. A sign-up
    never activated frees its address once its link has expired. If the email cannot be queued
    (RabbitMQ is down) the account is removed again and JobQueueUnavailable says to retry.
    """
    expired = timezone.now() - settings.ACTIVATION_MAX_AGE
    with transaction.atomic():
        same_address = User.objects.select_for_update().filter(Q(username__iexact=email) | Q(email__iexact=email))
        same_address.filter(is_active=False, activation__isnull=True, last_login__isnull=True,
                            date_joined__lt=expired).delete()
        if same_address.exists():
            return None
        user = User.objects.create_user(username=email, email=email, password=password, is_active=False)
        # The user's id, not the user: the task loads a fresh row (best practice 7).
        transaction.on_commit(lambda: _activation_email_queue(user))
    return user


def _activation_email_queue(user: User) -> None:
    try:
        send_activation_email.delay(user.pk)
    except OperationalError as exc:
        user.delete()  # an account whose email never goes out would hold the address for days
        raise JobQueueUnavailable(f"The sign-up could not be completed: the job queue is unavailable ({exc}). "
                                  "Nothing was kept; try again shortly.") from exc


def user_activate(*, token: str) -> User:
    """Activate the account a link was made for, once, if the link is intact and not expired."""
    try:
        user_id = signing.TimestampSigner(salt=SALT).unsign(token, max_age=settings.ACTIVATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ActivationFailed("This activation link has expired. Sign up again to get a new one.") from exc
    except signing.BadSignature as exc:
        raise ActivationFailed("This activation link is not valid. Check that it was copied whole.") from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id).first()
        if user is None:
            raise ActivationFailed("The account for this link no longer exists.")
        if Activation.objects.filter(user=user).exists():
            raise ActivationFailed("This activation link was used already. Sign in; if you cannot, "
                                   "ask an administrator.")
        Activation.objects.create(user=user)
        user.is_active = True
        user.save(update_fields=["is_active"])
    return user


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Issue a token for `user`; returns the row and the token, which is not stored in clear."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:8], key_hash=ApiToken.hash_key(key))
    return token, key


def api_token_authenticate(*, key: str) -> AbstractBaseUser | None:
    """The active user owning token `key`, noting when the token was last used."""
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # One write a minute at most, not one per request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
