from django.conf import settings
from django.db import models
from django_celery_results.models import TaskResult

from .managers import StoredResultManager


class StoredTaskResult(TaskResult):
    """TaskResult as the result backend writes it (see jobs/managers.py)."""

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

    result = models.OneToOneField(TaskResult, on_delete=models.CASCADE, primary_key=True, related_name="record")
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
            ("launch_restricted_job", "Can launch restricted jobs"),
        ]

    def __str__(self):
        return f"{self.result.task_name} {self.result.task_id}"


class JobAction(models.Model):
    """The audit trail of retries and cancellations: who did what to which job, and when."""

    class Kind(models.TextChoices):
        RETRY = "retry", "Retry"
        CANCEL = "cancel", "Cancel"

    record = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return (f"{self.get_kind_display()} of job {self.record.result.task_id} by {self.actor} "
                f"at {self.created_at:%Y-%m-%d %H:%M}" + (f" ({self.detail})" if self.detail else ""))
