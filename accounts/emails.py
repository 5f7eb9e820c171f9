"""The activation email: a signed, expiring link, sent once however often its job runs."""
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .models import EmailDelivery

SALT = "jobs.activation"


def activation_link(user: User) -> str:
    """The link that activates `user`, valid for ACTIVATION_DAYS."""
    token = signing.TimestampSigner(salt=SALT).sign(str(user.pk))
    return settings.SITE_URL.rstrip("/") + reverse("accounts:activate", args=[token])


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
