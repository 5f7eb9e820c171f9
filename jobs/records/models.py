"""The record of a job, kept beside its result from the moment it is sent, and the audit of what people did."""
from django.conf import settings
from django.db import models
from django_celery_results.models import TaskResult


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
    deliveries = models.JSONField(default=list, blank=True, help_text=(
        "Its deliveries before the latest, oldest first: [{started_at, worker, ended}]. A job delivered "
        "again (its worker lost mid-run, a retry) keeps here what its row's start and worker then said."))
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    step = models.ForeignKey("WorkflowStep", on_delete=models.CASCADE, null=True, blank=True, related_name="attempts",
                             help_text="The workflow step this job runs (each retry of a step is a job of its own).")

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
    """The audit trail of what people did to jobs and queues: retries, cancellations, pauses,
    purges and dead letters requeued or discarded; who, to what, and when."""

    class Kind(models.TextChoices):
        RETRY = "retry", "Retry"
        CANCEL = "cancel", "Cancel"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        PURGE = "purge", "Purge"
        REQUEUE = "requeue", "Requeue"
        DISCARD = "discard", "Discard"
        POOL = "pool", "Pool resize"

    record = models.ForeignKey(JobRecord, on_delete=models.CASCADE, null=True, blank=True, related_name="actions")
    workflow = models.ForeignKey("Workflow", on_delete=models.CASCADE, null=True, blank=True, related_name="actions")
    queue = models.CharField(max_length=200, blank=True, help_text="The queue acted on, for queue actions.")
    worker = models.CharField(max_length=255, blank=True, help_text="The worker acted on, for pool resizes.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        target = (f"job {self.record.result.task_id}" if self.record_id else
                  f"workflow {self.workflow_id}" if self.workflow_id else
                  f"worker {self.worker}" if self.worker else f"queue {self.queue}")
        return (f"{self.get_kind_display()} of {target} by {self.actor} "
                f"at {self.created_at:%Y-%m-%d %H:%M}" + (f" ({self.detail})" if self.detail else ""))


class UniqueKey(models.Model):
    """The key a unique job holds (job(unique=...)): the job holding it, and until when at most."""

    key = models.CharField(max_length=64, primary_key=True, help_text="SHA-256 of the job's name and key parts.")
    job_name = models.CharField(max_length=255)
    task_id = models.CharField(max_length=255, help_text="The job holding the key.")
    held_since = models.DateTimeField()
    held_until = models.DateTimeField(help_text=(
        "The latest it is held: the end of its period, or JOBS_UNIQUE_MAX_HOLD after the launch for a key "
        "held until its job starts or finishes (the bound on a key whose job was lost)."))

    class Meta:
        verbose_name = "unique job key"

    def __str__(self):
        return f"{self.job_name} {self.key[:12]}… held by {self.task_id}"
