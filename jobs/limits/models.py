"""The state of the limits: what operators changed, the jobs waiting on a limit, each key's pace."""
from django.db import models


class JobLimit(models.Model):
    """A limited job's limit as operators set it at run time (the admin); blank fields are as declared
    (job(limit=Limit(...))). Changes are in the admin's history, with the values before and after."""

    job_name = models.CharField(max_length=255, primary_key=True)
    rate = models.CharField(max_length=20, blank=True, help_text=(
        "At most this many started per second, minute or hour ('10/s', '100/m', '1000/h'), per key; "
        "blank: as declared in the code."))
    concurrency = models.PositiveIntegerField(null=True, blank=True, help_text=(
        "At most this many running at once, per key; blank: as declared in the code."))

    class Meta:
        verbose_name = "job limit"

    def __str__(self):
        return self.job_name


class WaitingJob(models.Model):
    """A limited job from the moment it is sent until it ends: waiting for its limit (dispatched_at empty),
    then sent to its queue, where, under a concurrency limit, it holds one of its key's slots until its
    result is final."""

    task_id = models.CharField(max_length=255, primary_key=True)
    job_name = models.CharField(max_length=255)
    key = models.CharField(max_length=255, blank=True, help_text="What the limit is split by: a host, an owner...")
    kwargs = models.JSONField(default=dict)
    options = models.JSONField(default=dict, help_text="How it is sent: queue, priority, headers.")
    waiting_since = models.DateTimeField(help_text="When it began to wait: its launch, or its retry.")
    not_before = models.DateTimeField(help_text="A retry's countdown: it waits at least until then.")
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "job waiting on its limit"
        verbose_name_plural = "jobs waiting on their limits"
        indexes = [
            models.Index(fields=["job_name", "key", "waiting_since"], name="jobs_waiting_order",
                         condition=models.Q(dispatched_at=None)),
            models.Index(fields=["job_name", "key"], name="jobs_waiting_slots",
                         condition=models.Q(dispatched_at__isnull=False)),
        ]

    def __str__(self):
        return f"{self.job_name} {self.task_id}"


class LimitKey(models.Model):
    """One key of a limit: the row dispatchers lock to send its jobs, and its pace (GCRA's theoretical
    arrival time: when the next job would be due at exactly the rate)."""

    job_name = models.CharField(max_length=255)
    key = models.CharField(max_length=255, blank=True)
    due = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_name", "key"], name="jobs_limit_key")]

    def __str__(self):
        return f"{self.job_name} {self.key}".strip()
