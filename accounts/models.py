import hashlib

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's bearer token for the API. Only its hash is stored; the token is shown once."""

    # Named for this site's API: Wagtail's own APIToken takes `api_tokens` on the same user model.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs_api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'nightly import script'.")
    prefix = models.CharField(max_length=8, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.name}, {self.user})"

    @staticmethod
    def hash_key(key: str) -> str:
        """The stored form of a token: tokens are random, so an unsalted SHA-256 is enough."""
        return hashlib.sha256(key.encode()).hexdigest()


class EmailDelivery(models.Model):
    """One email that must go out once: a redelivered task finds it sent and sends nothing."""

    key = models.CharField(max_length=200, unique=True, help_text="What the email is, e.g. 'activation:42'.")
    recipient = models.EmailField()
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "email deliveries"

    def __str__(self):
        return f"{self.key} to {self.recipient}"


class Activation(models.Model):
    """That an account was activated by its link, and when. A link activates once: an account
    deactivated afterwards (by an administrator) is not reactivated by it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="activation")
    activated_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.user} activated at {self.activated_at:%Y-%m-%d %H:%M}"
