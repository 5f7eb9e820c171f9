"""The accounts' job. Its name is stable: django-celery-beat and old results store it as text."""
from smtplib import SMTPRecipientsRefused

from django.conf import settings

from jobs.catalog import Limit, job

from . import emails


@job(
    "jobs.send_activation_email",
    restricted=True,
    # Network and SMTP errors (smtplib's are OSErrors) are retried with exponential backoff and
    # jitter, five times at most; an address the server refuses is not (best practice 4).
    autoretry_for=(OSError,),
    dont_autoretry_for=(SMTPRecipientsRefused,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    # Nothing to keep when it works; a failure is kept (best practice 6).
    ignore_result=True,
    store_errors_even_if_ignored=True,
    # A sign-up storm is sent at the SMTP provider's pace, across every worker; the rest wait their turn.
    limit=Limit(rate=settings.ACTIVATION_EMAIL_RATE),
)
def send_activation_email(user_id: int) -> None:
    """Send a new account its activation link, once."""
    emails.activation_email_send(user_id=user_id)
