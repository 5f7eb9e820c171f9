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


class JobRecord(models.Model):
    """What django-celery-results' TaskResult lacks about a job: who launched it, from where,
    with which arguments (as JSON), on which queue, its retries and cancellation."""

    class Origin(models.TextChoices):
        API = "api", "API"
        PAGE = "page", "Jobs page"
        SCHEDULE = "schedule", "Periodic task"
        RETRY = "retry", "Retry"
        CODE = "code", "Code"

    result = models.OneToOneField(TaskResult, on_delete=models.CASCADE, primary_key=True, related_name="job")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.CODE)
    arguments = models.JSONField(default=dict, help_text="The job's arguments by name, as JSON.")
    queue = models.CharField(max_length=100, blank=True, db_index=True)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retried_as"
    )
    attempts = models.PositiveIntegerField(default=1, help_text="Celery's retries of this job, plus one.")
    last_error = models.TextField(blank=True, help_text="The error that caused the last retry.")
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "job"
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
        ]

    def __str__(self):
        return f"{self.result.task_name} {self.result.task_id}"


class JobAction(models.Model):
    """The audit trail of retries and cancellations: who did what to which job, and when."""

    class Kind(models.TextChoices):
        RETRY = "retry", "Retry"
        CANCEL = "cancel", "Cancel"

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.job_id} by {self.actor} at {self.created_at:%Y-%m-%d %H:%M}"


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


class Contact(models.Model):
    """What the CSV import fills: one row per email address."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return f"{self.name} <{self.email}>"


class ContactImport(models.Model):
    """An uploaded CSV file of contacts, and what importing it found."""

    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveIntegerField(default=0, help_text="Data rows in the file (the header excluded).")
    imported = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=255, blank=True, help_text="The import job.")

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self):
        return f"{self.original_name} ({self.uploaded_at:%Y-%m-%d %H:%M})"


class ImportRowError(models.Model):
    """A CSV row the import refused, with its line number and why."""

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="errors")
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=255)
    raw = models.TextField()

    class Meta:
        ordering = ["line"]

    def __str__(self):
        return f"line {self.line}: {self.reason}"


class Report(models.Model):
    """A generated report file."""

    file = models.FileField(upload_to="reports/%Y/%m/")
    days = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Report of the last {self.days} days ({self.created_at:%Y-%m-%d %H:%M})"


class Probe(models.Model):
    """The mark the `jobs.probe` job leaves: one row per key, however often the job ran."""

    key = models.CharField(max_length=100, unique=True)
    runs = models.PositiveIntegerField(default=1, help_text="How many times a job recorded this key.")
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.key} ({self.runs} run{'s' if self.runs != 1 else ''})"
