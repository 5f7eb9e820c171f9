"""The job statistics: finished jobs counted per minute, task and queue."""
from datetime import UTC, datetime, timedelta

from celery import states
from django.db import models

from .histograms import histogram_add


class JobStats(models.Model):
    """Finished jobs counted by period, job and queue, by final state, with histograms of their queue
    wait and run time (jobs/stats/histograms.py), kept incrementally from the results as they finish. The
    charts and metrics read these rows, never a scan of the results, so they cost the same at 10,000
    results and at 10 million; and they outlive the results' retention. One row holds every final
    state's count (a chart point reads one row per job and queue, not one per state too)."""

    class Period(models.TextChoices):
        # Each chart reads the period one of its points spans: as many rows whatever the volume.
        MINUTE = "minute", "Minute"  # the last hour's chart, the overview and the alert rules
        HOUR = "hour", "Hour"  # the last day's chart
        SIX_HOURS = "6hours", "Six hours"  # the last week's
        DAY = "day", "Day"  # the last month's
        TOTAL = "total", "All time"  # one row per job, queue and state, never dropped: /metrics' counters

    # How long each period is, and how long its rows are kept.
    LENGTH = {Period.MINUTE: timedelta(minutes=1), Period.HOUR: timedelta(hours=1),
              Period.SIX_HOURS: timedelta(hours=6), Period.DAY: timedelta(days=1)}
    KEEP = {Period.MINUTE: timedelta(days=2), Period.HOUR: timedelta(days=35),
            Period.SIX_HOURS: timedelta(days=35), Period.DAY: timedelta(days=400)}
    ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # the start of the TOTAL rows, and of every period's count

    period = models.CharField(max_length=6, choices=Period.choices)
    start = models.DateTimeField()
    task_name = models.CharField(max_length=255)
    queue = models.CharField(max_length=200, blank=True)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    revoked = models.PositiveIntegerField(default=0)
    wait = models.JSONField(default=dict, help_text="Queue wait histogram: {bucket: jobs}.")
    run = models.JSONField(default=dict, help_text="Run time histogram: {bucket: jobs}.")

    class Meta:
        verbose_name_plural = "job stats"
        constraints = [models.UniqueConstraint(fields=["period", "start", "task_name", "queue"],
                                               name="jobs_jobstats_unique_job")]

    # The field counting each final state (celery.states.READY_STATES).
    STATE_FIELDS = {states.SUCCESS: "succeeded", states.FAILURE: "failed", states.REVOKED: "revoked"}

    def __str__(self):
        return f"{self.task_name} x{sum(self.counts.values())} in the {self.period} from {self.start:%Y-%m-%d %H:%M}"

    @property
    def counts(self) -> dict[str, int]:
        """Jobs by final state."""
        return {state: getattr(self, field) for state, field in self.STATE_FIELDS.items()}

    def add(self, counts: dict[str, int], wait: dict[str, int], run: dict[str, int]) -> None:
        """Add jobs by final state and their wait and run histograms to this row (not saved)."""
        for state, count in counts.items():
            setattr(self, self.STATE_FIELDS[state], getattr(self, self.STATE_FIELDS[state]) + count)
        histogram_add(self.wait, wait)
        histogram_add(self.run, run)

    @classmethod
    def period_start(cls, period: str, moment: datetime) -> datetime:
        """The start of the `period` (of LENGTH, counted from ALL_TIME in UTC) that `moment` is in."""
        length = cls.LENGTH[period]
        return cls.ALL_TIME + (moment - cls.ALL_TIME) // length * length


class JobStatsProgress(models.Model):
    """How far the job statistics have counted the results: up to `counted_to` (one row)."""

    counted_to = models.DateTimeField()

    class Meta:
        verbose_name_plural = "job stats progress"

    def __str__(self):
        return f"counted to {self.counted_to:%Y-%m-%d %H:%M:%S}"
