import hashlib

from django.conf import settings
from django.db import models
from django_celery_results.models import TaskResult

from .results import StoredResultManager


class ApiToken(models.Model):
    """A user's bearer token for the API. Only its hash is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
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


class StoredTaskResult(TaskResult):
    """TaskResult as the result backend writes it (see jobs/results.py)."""

    objects = StoredResultManager()

    class Meta:
        proxy = True
        verbose_name = "task result"
