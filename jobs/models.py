from datetime import UTC, datetime, timedelta

from celery import states
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_celery_results.models import TaskResult

from .managers import StoredResultManager
from .stats import histogram_add


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


class Queue(models.Model):
    """A job queue as operators control it: paused or not. Remembered here, so a worker started
    later stays off a paused queue too; its depth, consumers and rates are the broker's, read live."""

    name = models.CharField(max_length=200, primary_key=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        permissions = [("operate_queue", "Can pause, resume and purge queues and handle dead letters")]

    def __str__(self):
        return self.name + (" (paused)" if self.paused_at else "")


class Worker(models.Model):
    """A Celery worker as its last heartbeat described it (jobs/workers.py). Kept in the database,
    so the workers page survives restarts of the site and of the workers."""

    hostname = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, help_text="The queues it was started to consume.")
    consuming = models.JSONField(default=list, help_text="The queues it consumes now (not the paused ones).")
    broker_address = models.CharField(max_length=100, blank=True, help_text=(
        "Its end of its broker connection (host:port): the broker's consumers are matched to it by this."))
    concurrency = models.PositiveIntegerField(default=0, help_text="Pool size: jobs it can run at once.")
    processed = models.PositiveBigIntegerField(default=0, help_text="Jobs it has run since it started.")
    running = models.JSONField(default=list, help_text="The jobs it is running: [{id, name}].")
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When it shut down cleanly.")

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname

    @property
    def status(self) -> str:
        """stopped (shut down cleanly), lost (silent for three heartbeats), busy or idle."""
        if self.stopped_at:
            return "stopped"
        silent = (timezone.now() - self.last_heartbeat).total_seconds()
        if silent > 3 * settings.WORKER_HEARTBEAT_SECONDS:
            return "lost"
        return "busy" if self.running else "idle"


class JobStats(models.Model):
    """Finished jobs counted by period, job and queue, by final state, with histograms of their queue
    wait and run time (jobs/stats.py), kept incrementally from the results as they finish. The
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


class AlertRule(models.Model):
    """A condition on recent job statistics that notifies people when it holds: staff by email, a
    webhook, or both; once when an incident begins and once when it ends."""

    class Measure(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Failure rate, in %"
        WAIT_P95 = "wait_p95", "Queue wait p95, in seconds"

    name = models.CharField(max_length=200, unique=True)
    task_name = models.CharField("job", max_length=255, blank=True, help_text="The job it watches; empty: every job.")
    measure = models.CharField(max_length=20, choices=Measure.choices)
    threshold = models.FloatField(validators=[MinValueValidator(0)], help_text="Fires when the measure is above this.")
    minutes = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(1440)],
                                          help_text="Over the last this many minutes (1 to 1440).")
    email_staff = models.BooleanField(default=True, help_text="Email every active staff user with an address.")
    webhook_url = models.URLField(blank=True, help_text="POSTed a JSON description of the incident.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AlertIncident(models.Model):
    """A time an alert rule's condition held: from when it was first seen to when it no longer was."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(help_text="The measure when it began.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=models.Q(ended_at__isnull=True),
                                               name="jobs_alertincident_one_open_per_rule")]

    def __str__(self):
        return f"{self.rule} since {self.started_at:%Y-%m-%d %H:%M}" + (" (ended)" if self.ended_at else "")


def new_workflow_id() -> str:
    from .catalog import new_task_id  # time-ordered, as job ids are

    return new_task_id()


class Workflow(models.Model):
    """Jobs run as one: a graph of steps (chains, groups and chords of catalog jobs) launched,
    watched, cancelled and repaired together (jobs/workflows.py declares and checks them)."""

    class State(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        SUCCESS = "SUCCESS", "Succeeded"
        FAILURE = "FAILURE", "Failed"
        REVOKED = "REVOKED", "Cancelled"

    id = models.CharField(max_length=36, primary_key=True, default=new_workflow_id, editable=False)
    name = models.CharField(max_length=255, blank=True, db_index=True,
                            help_text="The declared workflow's name, or the one code gave it; empty for one launched as JSON.")
    spec = models.JSONField(help_text="The graph as launched: chain, group, chord and steps.")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="workflows"
    )
    origin = models.CharField(max_length=10, choices=JobRecord.Origin.choices, default=JobRecord.Origin.CODE)
    launcher = models.ForeignKey(JobRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="launched",
                                 help_text="The job that launched it: a declared workflow run from the catalog.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    steps_total = models.PositiveIntegerField()
    ends_waiting = models.PositiveIntegerField(help_text="Last steps (those nothing follows) not yet succeeded.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The last step's result; a list when several end it.")
    error = models.TextField(blank=True, help_text="Which step failed, and why.")
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name or 'workflow'} {self.id}"


class WorkflowStep(models.Model):
    """One job of a workflow: what it runs, which steps it waits for, and where it stands.

    `waiting` counts its parents not yet succeeded; the worker that finishes the last of them
    sends it. `counted` says this step's success was counted in its children, once, however many
    times its message is delivered."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="Its place in the spec, from 0.")
    path = models.CharField(max_length=255, help_text="Where it is in the spec, e.g. chain[1].group[3].")
    task_name = models.CharField(max_length=255)
    kwargs = models.JSONField(default=dict, help_text="Its own arguments; the input comes from its parents.")
    input = models.CharField(max_length=100, blank=True, help_text="The parameter its parents' results are given as.")
    gathers = models.BooleanField(default=False, help_text="Whether the input is the list of several parents' results.")
    parents = models.ManyToManyField("self", symmetrical=False, related_name="children", blank=True)
    task_id = models.CharField(max_length=255, unique=True, help_text="The job running it now (its latest attempt).")
    waiting = models.PositiveIntegerField(help_text="Parents not yet succeeded.")
    counted = models.BooleanField(default=False)
    sending_at = models.DateTimeField(null=True, blank=True, help_text="When it was claimed to be sent.")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the broker confirmed its message.")

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="jobs_workflowstep_unique")]
        indexes = [models.Index(fields=["sending_at"], condition=models.Q(sent_at__isnull=True),
                                name="jobs_workflowstep_unsent")]

    def __str__(self):
        return f"{self.path} {self.task_name}"
