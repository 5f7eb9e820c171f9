"""Sign-up with an activation email: an inactive account, a signed expiring link, one email."""
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .models import EmailDelivery

SALT = "jobs.activation"


class ActivationFailed(ValueError):
    """The link is expired, altered or for an account that no longer exists."""


def user_register(*, username: str, email: str, password: str) -> User:
    """Create an inactive account and, once it is committed, queue its activation email."""
    from .tasks import send_activation_email

    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password, is_active=False)
        # The user's id, not the user: the task loads a fresh row (best practice 7).
        send_activation_email.delay_on_commit(user.pk)
    return user


def activation_link(user: User) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(str(user.pk))
    return settings.SITE_URL.rstrip("/") + reverse("activate", args=[token])


def user_activate(*, token: str) -> User:
    """Activate the account a link was made for, if the link is intact and not expired."""
    try:
        user_id = signing.TimestampSigner(salt=SALT).unsign(token, max_age=settings.ACTIVATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ActivationFailed("This activation link has expired. Sign up again to get a new one.") from exc
    except signing.BadSignature as exc:
        raise ActivationFailed("This activation link is not valid. Check that it was copied whole.") from exc
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise ActivationFailed("The account for this link no longer exists.")
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    return user


def activation_email_send(*, user_id: int) -> bool:
    """Send the activation email once; False when there is nothing to send (sent, active, gone).

    The delivery row is locked while sending, so two deliveries of the same task cannot both send,
    and a redelivered task finds it sent. An SMTP error rolls the row back: the retry sends.
    """
    user = User.objects.filter(pk=user_id).first()
    if user is None or user.is_active:
        return False
    with transaction.atomic():
        delivery, _ = EmailDelivery.objects.select_for_update().get_or_create(
            key=f"activation:{user.pk}", defaults={"recipient": user.email}
        )
        if delivery.sent_at:
            return False
        send_mail(
            subject="Activate your account",
            message=(
                f"Hello {user.get_username()},\n\nOpen this link to activate your account:\n\n"
                f"{activation_link(user)}\n\nIt works for {settings.ACTIVATION_MAX_AGE.days} days."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
        delivery.sent_at = timezone.now()
        delivery.save(update_fields=["sent_at"])
    return True
