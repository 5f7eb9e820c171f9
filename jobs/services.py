"""Writes and side effects of the engine: launching, recording, retrying and cancelling jobs;
pausing, resuming and purging queues, dead letters, and the workers' heartbeats."""
import functools
import json
import logging
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import httpx
from celery import Task, current_app, states
from celery.utils.saferepr import saferepr
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from . import broker, outbound, selectors, stats, workflows
from .catalog import PROGRESS, JobTask, find_job, new_task_id
from .exceptions import (
    InvalidWorkflow,
    JobNotCancellable,
    JobNotRetryable,
    JobQueueUnavailable,
    LaunchLimitReached,
    WorkerUnreachable,
)
from .models import (
    AlertIncident,
    AlertRule,
    JobAction,
    JobRecord,
    JobStats,
    JobStatsProgress,
    Queue,
    Worker,
    Workflow,
    WorkflowStep,
)
from .results import DatabaseBackend

logger = logging.getLogger(__name__)


UNFINISHED_LOCK = 0x6A6F6273  # "jobs": the first key of the per-user advisory lock


def _unfinished_limit_check(user: AbstractBaseUser | None, adding: int) -> None:
    """LaunchLimitReached if `user` would have more than JOBS_MAX_UNFINISHED jobs queued or running
    with `adding` more. Call inside the transaction that records them: a lock per user makes two
    launches of one person (two web processes) wait for each other, so neither counts without the other."""
    limit = settings.JOBS_MAX_UNFINISHED
    if user is None or not user.is_authenticated or not limit:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [UNFINISHED_LOCK, user.pk])
    unfinished = JobRecord.objects.filter(launched_by=user, result__status__in=selectors.UNFINISHED)[:limit].count()
    if unfinished + adding > limit:
        raise LaunchLimitReached(
            f"You have {unfinished:,} jobs queued or running{'' if unfinished < limit else ' or more'}; with "
            f"{adding:,} more that is over JOBS_MAX_UNFINISHED ({limit:,}) for one person. Wait for some to finish, "
            "or cancel some.")


def job_launch(
    *,
    name: str,
    args: list | tuple = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    launched_by: AbstractBaseUser | None = None,
    origin: str = JobRecord.Origin.CODE,
    retry_of: JobRecord | None = None,
    system: bool = False,
) -> TaskResult:
    """Validate and record a job as PENDING, enqueue it once the transaction commits, and return
    its row as the API and pages show it.

    A person (`launched_by`) may launch only the jobs the catalog allows them (staff-only jobs are
    for staff); `system` launches made on someone's behalf (an upload's import) skip that check.
    `options` are apply_async's (queue, priority, expires, headers...). Raises a JobLaunchError
    before anything is written; outside a transaction the job is published before this returns,
    and JobQueueUnavailable then means it was not.
    """
    task = find_job(name, user=None if system else launched_by)
    arguments = task.json_arguments(args, kwargs)
    options = options or {}
    task_id = new_task_id()
    with transaction.atomic():
        _unfinished_limit_check(launched_by, 1)
        _job_records_create([{
            "task_id": task_id, "task_name": task.name, "args": [], "kwargs": arguments,
            "queue": options.get("queue") or job_queue(task.name),
            "periodic_task_name": (options.get("headers") or {}).get("periodic_task_name"),
            "launched_by": launched_by, "origin": origin, "retry_of": retry_of,
        }])
        transaction.on_commit(lambda: _publish(task, task_id, arguments, options))
        return selectors.jobs_with_details().get(task_id=task_id)


def job_queue(task_name: str) -> str:
    """The queue a job goes to when no queue is given: the one the task routes send it to."""
    return current_app.amqp.router.route({}, task_name)["queue"].name


# Every job sent is recorded before it is published: one statement writes both rows of any number
# of jobs, instead of a transaction of two ORM inserts per job, which cost a third of the
# end-to-end throughput in bench_throughput; beat records a batch of due runs at once.
RECORD_JOBS_SQL = """
WITH job (task_id, task_name, task_args, task_kwargs, periodic_task_name, launched_by_id, origin, arguments,
          queue, retry_of_id, step_id) AS (VALUES {values}),
result AS (
    INSERT INTO {results}
        (task_id, task_name, status, task_args, task_kwargs, content_type, content_encoding,
         periodic_task_name, date_created, date_done)
    SELECT task_id, task_name, %s, task_args, task_kwargs, 'application/json', 'utf-8', periodic_task_name, %s, %s
    FROM job
    RETURNING id, task_id
)
INSERT INTO {records} (result_id, launched_by_id, origin, arguments, queue, retry_of_id, step_id, attempts, last_error,
                       deliveries)
SELECT result.id, job.launched_by_id::{user_key}, job.origin, job.arguments::jsonb, job.queue,
       job.retry_of_id::{record_key}, job.step_id::{step_key}, 1, '', '[]'
FROM result JOIN job USING (task_id)
"""


def _job_records_create(jobs: list[dict[str, Any]]) -> None:
    """Record PENDING, in one statement, jobs given as dicts of task_id, task_name, args, kwargs,
    queue, periodic_task_name and optionally launched_by, origin, retry_of, step_id."""
    now = timezone.now()
    sql = RECORD_JOBS_SQL.format(
        values=", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(jobs)),
        results=TaskResult._meta.db_table, records=JobRecord._meta.db_table,
        user_key=JobRecord._meta.get_field("launched_by").target_field.db_type(connection),
        record_key=JobRecord._meta.pk.target_field.db_type(connection),
        step_key=JobRecord._meta.get_field("step").target_field.db_type(connection),
    )
    parameters = []
    for job in jobs:
        launched_by, retry_of = job.get("launched_by"), job.get("retry_of")
        parameters += [
            # task_args/kwargs encoded as the worker will store them once it picks the job up
            job["task_id"], job["task_name"], json.dumps(saferepr(tuple(job["args"]))),
            json.dumps(saferepr(job["kwargs"])), job["periodic_task_name"],
            launched_by.pk if launched_by else None,
            job.get("origin") or (JobRecord.Origin.SCHEDULE if job["periodic_task_name"] else JobRecord.Origin.CODE),
            json.dumps({"args": list(job["args"]), "kwargs": job["kwargs"]}), job["queue"],
            retry_of.pk if retry_of else None, job.get("step_id"),
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*parameters, states.PENDING, now, now])


def job_recorded(task: Task | None) -> bool:
    """Whether a job sent of `task` gets a PENDING record: one whose outcome the database stores."""
    return task is not None and not task.ignore_result and isinstance(current_app.backend, DatabaseBackend)


# The ids of the jobs being published that were recorded already, with more than a message tells.
_recorded: ContextVar[frozenset[str]] = ContextVar("recorded", default=frozenset())


@contextmanager
def jobs_recorded(jobs: list[dict[str, Any]]):
    """Record PENDING the jobs about to be published in the block (see _job_records_create), in
    one statement; publishing them inside the block records nothing more."""
    if jobs:
        _job_records_create(jobs)
    token = _recorded.set(frozenset(job["task_id"] for job in jobs))
    try:
        yield
    finally:
        _recorded.reset(token)


def job_publish_failed(*, task_id: str, error: Exception) -> bool:
    """Settle a recorded job whose publish failed, so that what the launcher is told stays true.

    A publish can fail after its message reached the queue (the broker's confirm was lost with its
    connection), so the job is marked REVOKED, which no worker ever runs (jobs/managers.py), rather
    than FAILURE, which a worker would overwrite by running it. Only while it is still PENDING:
    if a worker has taken it already, the message did get through, and False says it was launched
    after all."""
    return bool(TaskResult.objects.filter(task_id=task_id, status=states.PENDING).update(
        status=states.REVOKED,
        result=json.dumps({"exc_type": "JobQueueUnavailable", "exc_message": [
            f"Not queued: the job queue was unavailable ({error}). It will not run; launch it again."]}),
        date_done=timezone.now(),
    ))


def _publish(task: JobTask, task_id: str, arguments: dict[str, Any], options: dict[str, Any]) -> None:
    token = _recorded.set(frozenset([task_id]))
    try:
        task.apply_async(kwargs=arguments, task_id=task_id, **options)
    except OperationalError as exc:
        if job_publish_failed(task_id=task_id, error=exc):
            raise JobQueueUnavailable(f"The job queue is unavailable ({exc}); job {task_id} was not enqueued "
                                      "and will not run.") from exc
        logger.warning("Job %s: its publish reported %s, but a worker has taken it: launched.", task_id, exc)
    finally:
        _recorded.reset(token)


def job_record_published(*, task_id: str, task_name: str, args: list, kwargs: dict, queue: str,
                         periodic_task_name: str | None) -> None:
    """Record PENDING a job that beat or code sent without recording it first (job_launch does)."""
    if task_id in _recorded.get():
        return
    _job_records_create([{"task_id": task_id, "task_name": task_name, "args": args, "kwargs": kwargs,
                          "queue": queue, "periodic_task_name": periodic_task_name}])


def job_send_again(*, task: JobTask, countdown: int) -> None:
    """Send the job a worker holds (task.request) again under its id, as it came, `countdown` seconds
    from now; its record stays as it is."""
    token = _recorded.set(frozenset([task.request.id]))
    try:
        task.signature_from_request(countdown=countdown).apply_async()
    finally:
        _recorded.reset(token)


def job_record_retried(*, task_id: str, reason: str) -> None:
    """Count a Celery retry of the job and keep the error that caused it."""
    JobRecord.objects.filter(result__task_id=task_id).update(attempts=F("attempts") + 1, last_error=reason)


def job_retry(*, result: TaskResult, user: AbstractBaseUser) -> TaskResult:
    """Launch a job again with the same arguments, linked to the original, and audit it; a workflow's
    step is retried in its place, so the workflow goes on from it."""
    result.refresh_from_db(fields=["status"])  # as it is now, not as the page that asked saw it
    if (refusal := selectors.job_retry_refusal(result)) is not None:
        raise JobNotRetryable(refusal)
    record = result.record
    if record.step_id:
        return workflow_step_retry(result=result, user=user)
    with transaction.atomic():
        retried = job_launch(
            name=result.task_name, args=record.arguments.get("args", []), kwargs=record.arguments.get("kwargs", {}),
            options={"queue": record.queue} if record.queue else None,
            launched_by=user, origin=JobRecord.Origin.RETRY, retry_of=record,
        )
        JobAction.objects.create(record=record, kind=JobAction.Kind.RETRY, actor=user, detail=f"as {retried.task_id}")
    return retried


def _revoked_result(message: str) -> str:
    return json.dumps({"exc_type": "TaskRevokedError", "exc_message": [message]})


def job_cancel(*, result: TaskResult, user: AbstractBaseUser) -> None:
    """Cancel a job: a queued one never starts, a running one is stopped (SIGTERM), and it ends REVOKED."""
    if result.status in states.READY_STATES:
        raise JobNotCancellable(f"Job {result.task_id} already ended ({result.status}); there is nothing to cancel.")
    running = result.status not in (states.PENDING, states.RECEIVED)
    now = timezone.now()
    with transaction.atomic():
        JobRecord.objects.filter(pk=result.pk).update(cancelled_by=user, cancelled_at=now)
        TaskResult.objects.filter(pk=result.pk).update(
            status=states.REVOKED, date_done=now,
            result=_revoked_result(f"cancelled by {user}"),
        )
        JobAction.objects.create(
            record_id=result.pk, kind=JobAction.Kind.CANCEL, actor=user,
            detail="stopped while running" if running else "dequeued",
        )
        workflow_steps_revoked(task_ids=[result.task_id], why=f"was cancelled by {user}")
    # Workers drop a revoked job when it reaches them and stop it if it runs; a worker that was
    # not listening still skips it, because the result backend finds its row REVOKED (JobTask).
    current_app.control.revoke(result.task_id, terminate=running, signal="SIGTERM")


def periodic_task_run_now(*, periodic_task: PeriodicTask, launched_by: AbstractBaseUser | None = None) -> TaskResult:
    """Launch a periodic task's job now, with the arguments and options beat would send it with."""
    # Beat's own reading of the row: args, kwargs, queue, exchange, routing key, priority,
    # expiry and headers, including the periodic_task_name that tags its results.
    entry = ModelEntry(PeriodicTask.objects.get(pk=periodic_task.pk))
    return job_launch(
        name=entry.task, args=entry.args, kwargs=entry.kwargs, options=entry.options,
        launched_by=launched_by, origin=JobRecord.Origin.SCHEDULE,
    )


STALE_GRACE = timedelta(minutes=5)


def stale_jobs_fail() -> int:
    """Mark FAILURE the jobs still STARTED (or PROGRESS) past their hard time limit: no worker can
    still be running them, so the worker that was is gone without a word. Returns how many."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=current_app.conf.task_time_limit) - STALE_GRACE
    message = ("No worker reported an outcome before the time limit: the worker running it was lost. "
               "Retry it if it is still wanted.")
    return TaskResult.objects.filter(status__in=[states.STARTED, PROGRESS], date_started__lt=cutoff).update(
        status=states.FAILURE, date_done=now,
        result=json.dumps({"exc_type": "WorkerLost", "exc_message": [message]}),
    )


def consumers_tell(command: str, queue: str, destination: list[str] | None = None) -> None:
    """Ask workers (all, or `destination`) to start or stop consuming `queue`. Best effort: a
    worker that misses it is put right by its next heartbeat (jobs/workers.py)."""
    if destination == []:  # Celery broadcasts to every worker when told no destination
        return
    try:
        getattr(current_app.control, command)(queue, destination=destination)
    except OperationalError as exc:
        logger.warning("Could not tell workers to %s %s: %s", command, queue, exc)


def queue_pause(*, name: str, user: AbstractBaseUser | None) -> None:
    """Stop every worker taking jobs from queue `name`, now and whenever one starts, until resumed.
    Jobs already handed to a worker (its prefetch) still run; the rest wait in the queue."""
    with transaction.atomic():
        Queue.objects.update_or_create(name=name, defaults={"paused_at": timezone.now(), "paused_by": user})
        JobAction.objects.create(kind=JobAction.Kind.PAUSE, queue=name, actor=user)
        transaction.on_commit(lambda: consumers_tell("cancel_consumer", name))


def queue_resume(*, name: str, user: AbstractBaseUser | None) -> None:
    """Let the workers started for queue `name`, and only them, take its jobs again. Told by name:
    a broadcast add_consumer would make every worker consume it. A worker with no heartbeat yet
    starts consuming at its first one."""
    with transaction.atomic():
        Queue.objects.update_or_create(name=name, defaults={"paused_at": None, "paused_by": None})
        JobAction.objects.create(kind=JobAction.Kind.RESUME, queue=name, actor=user)
        started_for = list(Worker.objects.filter(queues__contains=[name], stopped_at=None)
                           .values_list("hostname", flat=True))
        transaction.on_commit(lambda: consumers_tell("add_consumer", name, destination=started_for))


def worker_pool_resize(*, hostname: str, change: int, user: AbstractBaseUser | None) -> None:
    """Grow (change > 0) or shrink a worker's pool by `change` processes (Celery's pool_grow and
    pool_shrink; prefork pools only), audited. Raises WorkerUnreachable if it does not answer."""
    command = current_app.control.pool_grow if change > 0 else current_app.control.pool_shrink
    try:
        replies = command(abs(change), destination=[hostname], reply=True, timeout=3.0)
    except OperationalError as exc:
        raise WorkerUnreachable(f"The broker cannot be reached: {exc}") from exc
    answer = next((reply[hostname] for reply in replies if hostname in reply), None)
    if answer is None:
        raise WorkerUnreachable(f"Worker {hostname} did not answer within 3 seconds.")
    if "error" in answer:
        raise WorkerUnreachable(f"Worker {hostname} refused: {answer['error']}")
    JobAction.objects.create(kind=JobAction.Kind.POOL, worker=hostname, actor=user,
                             detail=f"{'+' if change > 0 else ''}{change} process{'es' if abs(change) != 1 else ''}")


def queue_purge(*, name: str, user: AbstractBaseUser | None) -> int:
    """Remove every message waiting in queue `name`; the jobs they carried end REVOKED, so none is
    left PENDING for ever. Returns how many messages were removed. Messages a worker holds (running,
    prefetched, or waiting for a countdown) are not in the queue and stay."""
    removed = 0
    result = _revoked_result(f"purged from queue {name} by {user}")
    with broker.broker_channel() as channel:
        for messages in broker.messages_taken(channel, name):
            ids = [str(message.headers["id"]) for message in messages if (message.headers or {}).get("id")]
            # Recorded before the messages go: a crash in between leaves them queued, and a worker
            # then skips their jobs, which are REVOKED.
            TaskResult.objects.filter(task_id__in=ids, status=states.PENDING).update(
                status=states.REVOKED, date_done=timezone.now(), result=result)
            workflow_steps_revoked(task_ids=ids, why=f"was purged from queue {name} by {user}")
            channel.basic_ack(messages[-1].delivery_tag, multiple=True)
            removed += len(messages)
    JobAction.objects.create(kind=JobAction.Kind.PURGE, queue=name, actor=user, detail=f"{removed} messages")
    return removed


def dead_letters_handle(*, requeue: bool, chosen: Callable[[broker.DeadLetter], bool],
                        user: AbstractBaseUser | None) -> int:
    """Requeue to its original queue, or discard, every dead letter `chosen` accepts; audited on
    each job's record. A requeued job is PENDING again and runs under its own id. Returns how many."""
    handled = []
    with broker.broker_channel() as channel:
        letters = [letter for messages in broker.messages_taken(channel, settings.DEAD_LETTER_QUEUE)
                   for letter in map(broker.DeadLetter.from_message, messages)
                   # A message not dead-lettered from a queue has nowhere to go back to.
                   if chosen(letter) and (letter.queue or not requeue)]
        ids = [letter.task_id for letter in letters if letter.task_id]
        if requeue:
            # PENDING before the messages are back in their queues: a worker that runs one at once
            # then writes over this, not this over its outcome.
            before = dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "status"))
            TaskResult.objects.filter(task_id__in=ids).update(status=states.PENDING, date_done=timezone.now())
        try:
            for letter in letters:
                if requeue:  # through the default exchange, which routes to any queue by name; x-death
                    # stays, so a message that dies again shows how often it died
                    channel.basic_publish_confirm(broker.Message(letter.message.body, **letter.message.properties),
                                                  exchange="", routing_key=letter.queue)
                channel.basic_ack(letter.message.delivery_tag)
                handled.append(letter)
        finally:
            if requeue:  # those not sent back stay dead letters: their rows say what they said
                for letter in letters[len(handled):]:
                    if letter.task_id in before:
                        TaskResult.objects.filter(task_id=letter.task_id).update(status=before[letter.task_id])
    by_id = {letter.task_id: letter for letter in handled if letter.task_id}
    JobAction.objects.bulk_create([
        JobAction(record_id=pk, kind=JobAction.Kind.REQUEUE if requeue else JobAction.Kind.DISCARD, actor=user,
                  queue=by_id[task_id].queue, detail=f"after {by_id[task_id].count} deaths ({by_id[task_id].reason})")
        for pk, task_id in JobRecord.objects.filter(result__task_id__in=list(by_id)).values_list("pk", "result__task_id")
    ])
    return len(handled)


def worker_heartbeat(*, hostname: str, **description) -> None:
    """Keep what a worker says of itself: queues, pool, jobs processed and running (see Worker)."""
    Worker.objects.update_or_create(
        hostname=hostname, defaults={**description, "last_heartbeat": timezone.now(), "stopped_at": None})


def worker_stopped(*, hostname: str) -> None:
    """Mark a worker that shut down cleanly, so it is shown stopped rather than lost."""
    Worker.objects.filter(hostname=hostname).update(stopped_at=timezone.now(), running=[])


# Results written this recently may still be committing in another transaction: counted next time.
STATS_LAG = timedelta(seconds=10)
# What a result stored without a task name is counted as: a Celery chord's body, a result another
# app wrote to the same table. Counted, not skipped, and never a reason for the count to stop.
UNNAMED = "(unnamed)"

STATS_SQL = """
SELECT date_trunc('minute', r.date_done), COALESCE(NULLIF(r.task_name, ''), %s), COALESCE(j.queue, ''), r.status,
       CASE WHEN r.date_started IS NOT NULL THEN {wait} END,
       CASE WHEN r.date_started IS NOT NULL THEN {run} END,
       COUNT(*)
FROM {results} r LEFT JOIN {records} j ON j.result_id = r.id
WHERE r.date_done > %s AND r.date_done <= %s AND r.status IN %s
GROUP BY 1, 2, 3, 4, 5, 6
""".format(
    wait=stats.BUCKET_SQL.format(ms="EXTRACT(EPOCH FROM r.date_started - r.date_created) * 1000"),
    run=stats.BUCKET_SQL.format(ms="EXTRACT(EPOCH FROM r.date_done - r.date_started) * 1000"),
    results=TaskResult._meta.db_table, records=JobRecord._meta.db_table,
)


def job_stats_count(*, now=None) -> int:
    """Count the jobs that finished since the last call into JobStats (per minute, hour, six hours,
    day and all time), an hour of results per transaction; drop statistics past their keeping. Returns how many jobs
    were counted. Calls queue behind one another (the progress row is locked), so none counts twice."""
    now = now or timezone.now()
    until, counted = now - STATS_LAG, 0
    while True:
        with transaction.atomic():
            progress = JobStatsProgress.objects.select_for_update().filter(pk=1).first()
            if progress is None:
                oldest = TaskResult.objects.order_by("date_done").values_list("date_done", flat=True).first()
                JobStatsProgress.objects.get_or_create(pk=1, defaults={
                    "counted_to": (oldest or until) - timedelta(microseconds=1)})
                continue
            start = progress.counted_to
            if start >= until:
                break
            end = min(start + timedelta(hours=1), until)
            counted += _job_stats_add(start, end, now=now)
            progress.counted_to = end
            progress.save(update_fields=["counted_to"])
    for period, keep in JobStats.KEEP.items():
        JobStats.objects.filter(period=period, start__lt=now - keep).delete()
    return counted


def _job_stats_add(start, end, *, now) -> int:
    """Add the jobs finished in (start, end] to the statistics of their periods; not to periods
    already past their keeping (as when a long history is first counted), which would be dropped."""
    with connection.cursor() as cursor:
        cursor.execute(STATS_SQL, [UNNAMED, start, end, tuple(states.READY_STATES)])
        groups = cursor.fetchall()
    if any(group[1] == UNNAMED for group in groups):
        _unnamed_results_warn()
    added: dict[tuple, JobStats] = {}
    for minute, task_name, queue, status, wait, run, count in groups:
        periods = [(period, JobStats.period_start(period, minute)) for period in JobStats.LENGTH]
        for period, period_start in [(JobStats.Period.TOTAL, JobStats.ALL_TIME), *periods]:
            keep = JobStats.KEEP.get(period)  # TOTAL is kept for ever
            if keep and period_start < now - keep:
                continue
            row = added.setdefault((period, period_start, task_name, queue), JobStats(
                period=period, start=period_start, task_name=task_name, queue=queue, wait={}, run={}))
            row.add({status: count}, {str(wait): count} if wait is not None else {},
                    {str(run): count} if run is not None else {})
    if not added:
        return 0
    # The periods the last call already began counting: add to them.
    existing = JobStats.objects.filter(
        period__in={key[0] for key in added}, start__in={key[1] for key in added},
        task_name__in={key[2] for key in added})
    for row in existing:
        if (key := (row.period, row.start, row.task_name, row.queue)) in added:
            added[key].add(row.counts, row.wait, row.run)
    JobStats.objects.bulk_create(added.values(), update_conflicts=True,
                                 update_fields=[*JobStats.STATE_FIELDS.values(), "wait", "run"],
                                 unique_fields=["period", "start", "task_name", "queue"])
    return sum(group[-1] for group in groups)


@functools.cache  # once a process: the log says what happens, not how often
def _unnamed_results_warn() -> None:
    logger.warning("job statistics: results without a task name (a Celery chord's body, or another app's) "
                   "are counted as %r.", UNNAMED)


def alerts_evaluate(*, now=None) -> None:
    """Measure every enabled alert rule over its window of job statistics; open an incident (and
    notify) when a rule's measure goes above its threshold, close it (and notify) when it is back.
    Run after each statistics count, so once a minute."""
    now = now or timezone.now()
    for rule in AlertRule.objects.filter(enabled=True):
        value = selectors.alert_measure(rule, now=now)
        firing = value is not None and value > rule.threshold
        open_incident = rule.incidents.filter(ended_at__isnull=True).first()
        if firing and open_incident is None:
            incident = AlertIncident.objects.create(rule=rule, value=value)
            _alert_notify(rule, incident, state="firing", value=value)
        elif not firing and open_incident is not None:
            open_incident.ended_at = now
            open_incident.save(update_fields=["ended_at"])
            _alert_notify(rule, open_incident, state="resolved", value=value)


def _alert_notify(rule: AlertRule, incident: AlertIncident, *, state: str, value: float | None) -> None:
    """Tell staff and the webhook; a failure to tell is logged, never raised (the next rule waits)."""
    measured = "no jobs" if value is None else f"{value:.3g}"
    subject = f"[jobs] {rule.name}: {state} ({rule.get_measure_display()} {measured}, threshold {rule.threshold:g})"
    body = (f"{rule.name} is {state}.\nJob: {rule.task_name or 'every job'}\nMeasure: {rule.get_measure_display()} "
            f"over the last {rule.minutes} minutes = {measured} (threshold {rule.threshold:g})\n"
            f"Incident began {incident.started_at:%Y-%m-%d %H:%M:%S %Z}.\nOperations: {settings.SITE_URL}/admin/jobs/queue/")
    if rule.email_staff:
        recipients = list(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                          .values_list("email", flat=True))
        try:
            send_mail(subject, body, None, recipients)
        except OSError as exc:
            logger.error("Alert %s: email not sent: %s", rule.name, exc)
    if rule.webhook_url:
        payload = {"rule": rule.name, "state": state, "job": rule.task_name or None, "measure": rule.measure,
                   "value": value, "threshold": rule.threshold, "minutes": rule.minutes,
                   "started_at": incident.started_at.isoformat(),
                   "ended_at": incident.ended_at.isoformat() if incident.ended_at else None}
        try:
            outbound.post_json(rule.webhook_url, payload, allowed_networks=settings.ALERT_WEBHOOK_ALLOWED_NETWORKS)
        except (outbound.AddressRefused, httpx.HTTPError) as exc:
            # Neither the URL's credentials nor the answer's body: the log is read by more people.
            logger.error("Alert %s: webhook %s failed: %s", rule.name, outbound.url_redacted(rule.webhook_url),
                         exc if isinstance(exc, outbound.AddressRefused) else f"{type(exc).__name__}: {exc}")


# Workflows: graphs of jobs (jobs/workflows.py plans them). Every step is recorded PENDING at launch;
# a step is sent when its last parent succeeds, by the worker that ran that parent, and carries its
# id in this message header, which the worker reads back as request.workflow_step (jobs/receivers.py).
WORKFLOW_STEP_HEADER = "workflow_step"
Edge = WorkflowStep.parents.through  # from_workflowstep: the child; to_workflowstep: its parent
RECORD_BATCH = 1000


def workflow_launch(*, spec: Any, name: str = "", launched_by: AbstractBaseUser | None = None,
                    origin: str = JobRecord.Origin.CODE, system: bool = False,
                    launcher: JobRecord | None = None, admit: Callable[[int], None] | None = None) -> Workflow:
    """Check `spec` whole, record the workflow and every step PENDING, and send the steps that wait for
    nothing once the transaction commits.

    Raises InvalidWorkflow (naming each wrong step) or another JobLaunchError before anything is
    written. Once written, the workflow runs: steps the broker could not take yet are sent by
    workflows_repair when it is back.
    `admit` is called with the number of steps before anything is written and may refuse them
    (the API's: each step counts against JOBS_LAUNCH_RATE); the launcher's JOBS_MAX_UNFINISHED
    counts them too.
    """
    planned = workflows.compile_spec(spec, user=None if system else launched_by)
    if admit is not None:
        admit(len(planned))
    with_children = {parent for step in planned for parent in step.parents}
    with transaction.atomic():
        _unfinished_limit_check(launched_by, len(planned))
        flow = Workflow.objects.create(
            name=name, spec=spec, launched_by=launched_by, origin=origin, launcher=launcher,
            steps_total=len(planned), ends_waiting=len(planned) - len(with_children),
        )
        steps = WorkflowStep.objects.bulk_create([
            WorkflowStep(workflow=flow, position=step.position, path=step.path[:255], task_name=step.task.name,
                         kwargs=step.kwargs, input=step.input, gathers=step.gathers, task_id=new_task_id(),
                         waiting=len(step.parents), sending_at=None if step.parents else timezone.now())
            for step in planned
        ], batch_size=RECORD_BATCH)
        Edge.objects.bulk_create([
            Edge(from_workflowstep_id=steps[step.position].pk, to_workflowstep_id=steps[parent].pk)
            for step in planned for parent in step.parents
        ], batch_size=RECORD_BATCH * 5)
        for start in range(0, len(steps), RECORD_BATCH):
            _job_records_create([{
                "task_id": step.task_id, "task_name": step.task_name, "args": [], "kwargs": step.kwargs,
                "queue": job_queue(step.task_name), "periodic_task_name": None, "launched_by": launched_by,
                "origin": origin, "step_id": step.pk,
            } for step in steps[start:start + RECORD_BATCH]])
        first = [step for step in steps if not step.waiting]
        transaction.on_commit(lambda: _workflow_launch_send(flow, first))
    return flow


def _workflow_launch_send(flow: Workflow, steps: list[WorkflowStep]) -> None:
    """Send a new workflow's first steps. If the broker cannot take them, the launch still stands:
    the workflow is recorded whole and its unsent steps stay claimed, so workflows_repair sends them
    once the broker is back. Answering "not started" could be untrue: a step whose confirm was lost
    may have reached the queue and be running already."""
    try:
        _workflow_steps_send(steps)
    except OperationalError as exc:
        logger.warning("Workflow %s: its first steps will be sent once the job queue is back (%s).", flow.id, exc)


def workflow_launch_declared(*, name: str, kwargs: dict[str, Any], launched_by: AbstractBaseUser | None,
                             origin: str, admit: Callable[[int], None] | None = None) -> Workflow:
    """Launch the workflow declared as `name` (@workflow) with `kwargs`, now: its steps are recorded
    before this returns, with no job to launch it."""
    task = find_job(name, user=launched_by)
    if not isinstance(task, workflows.WorkflowTask):
        raise InvalidWorkflow([{"field": "workflow", "message": f"{name} is a job, not a declared workflow; launch it "
                                "at /api/jobs/ or as a step"}])
    arguments = task.validate_arguments(kwargs=kwargs)
    spec = task.build(**{field: getattr(arguments, field) for field in arguments.model_fields})
    return workflow_launch(spec=spec, name=name, launched_by=launched_by, origin=origin, system=True, admit=admit)


def workflow_launch_from_job(*, name: str, spec: Any, launcher_id: str) -> Workflow:
    """Launch a declared workflow from the job that runs it (a catalog launch, a schedule), on the
    behalf of whoever launched that job."""
    launcher = JobRecord.objects.select_related("launched_by").filter(result__task_id=launcher_id).first()
    return workflow_launch(
        spec=spec, name=name, system=True, launcher=launcher,
        launched_by=launcher.launched_by if launcher else None,
        origin=launcher.origin if launcher else JobRecord.Origin.CODE,
    )


def _step_input(step: WorkflowStep) -> Any:
    """What the step's input parameter receives: its parent's result, or its parents' in order."""
    parents = list(WorkflowStep.objects.filter(children=step).order_by("position").values_list("task_id", flat=True))
    results = dict(TaskResult.objects.filter(task_id__in=parents).values_list("task_id", "result"))
    values = [json.loads(results[task_id]) for task_id in parents]
    return values if step.gathers else values[0]


def _workflow_steps_send(steps: list[WorkflowStep]) -> None:
    """Publish steps claimed for sending (sending_at set), each with its input, and mark them sent.
    OperationalError when the broker cannot take them: the unsent stay claimed, for workflows_repair."""
    token = _recorded.set(frozenset(step.task_id for step in steps))  # recorded at launch
    sent = []
    try:
        for step in steps:
            kwargs = {**step.kwargs, step.input: _step_input(step)} if step.input else step.kwargs
            find_job(step.task_name).apply_async(kwargs=kwargs, task_id=step.task_id,
                                                 headers={WORKFLOW_STEP_HEADER: step.pk})
            sent.append(step.task_id)
            if len(sent) == RECORD_BATCH:
                _steps_sent(sent)
    finally:
        _recorded.reset(token)
        _steps_sent(sent)


def _steps_sent(task_ids: list[str]) -> None:
    """Mark sent the steps of these jobs, a batch at a time (not a statement per step, which competes
    with the workers for the database while a chord's thousands of members go out); empty the list."""
    WorkflowStep.objects.filter(task_id__in=task_ids).update(sent_at=timezone.now())
    task_ids.clear()


def _steps_claim(steps, *, unsent: bool = False) -> list[WorkflowStep]:
    """Claim for sending, once whoever else tries, the steps of `steps` that wait for nothing more;
    with `unsent`, also those claimed before but not sent (their sender died)."""
    ready = steps.filter(waiting=0, workflow__state=Workflow.State.RUNNING)
    ready = ready.filter(sent_at__isnull=True) if unsent else ready.filter(sending_at__isnull=True)
    ready = list(ready.select_for_update(of=("self",)))
    WorkflowStep.objects.filter(pk__in=[step.pk for step in ready]).update(sending_at=timezone.now())
    return ready


def _steps_send_on_commit(steps: list[WorkflowStep]) -> None:
    def send():
        try:
            _workflow_steps_send(steps)
        except OperationalError as exc:  # sent by workflows_repair once the broker is back
            logger.warning("Workflow steps not sent now (%s): %s", exc, ", ".join(step.task_id for step in steps))

    if steps:
        transaction.on_commit(send)


# One statement for what finishing a step changes, the same whichever worker runs it: the step is
# counted once, and each child's count of parents to wait for goes down by one.
STEP_SUCCEEDED_SQL = """
WITH counted AS (
    UPDATE {steps} SET counted = true WHERE id = %s AND task_id = %s AND NOT counted RETURNING id, workflow_id
), children AS (
    UPDATE {steps} child SET waiting = child.waiting - 1
    FROM {edges} edge, counted
    WHERE edge.to_workflowstep_id = counted.id AND child.id = edge.from_workflowstep_id
    RETURNING child.id, child.waiting
)
SELECT (SELECT workflow_id FROM counted), (SELECT count(*) FROM children),
       ARRAY(SELECT id FROM children WHERE waiting = 0)
"""


def workflow_step_succeeded(*, step_id: int, task_id: str) -> None:
    """A step's job succeeded: count it in its children, once however often it is delivered, and send
    those it was the last parent of; or, a last step, finish the workflow when it was the last one."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(STEP_SUCCEEDED_SQL.format(steps=WorkflowStep._meta.db_table, edges=Edge._meta.db_table),
                       [step_id, task_id])
        workflow_id, children, ready = cursor.fetchone()
        if workflow_id is None:  # counted before (a message delivered again), or an attempt since retried
            # The worker that counted it may have died before sending the children it claimed.
            children = WorkflowStep.objects.filter(parents=step_id, parents__task_id=task_id)
            _steps_send_on_commit(_steps_claim(children, unsent=True))
            return
        elif not children:  # nothing follows it: one of the workflow's ends
            Workflow.objects.filter(pk=workflow_id).update(ends_waiting=F("ends_waiting") - 1)
            Workflow.objects.filter(pk=workflow_id, ends_waiting=0, state=Workflow.State.RUNNING).update(
                state=Workflow.State.SUCCESS, finished_at=timezone.now(), result=_workflow_result(workflow_id))
            return
        elif not ready:  # its children wait for other parents
            return
        else:
            ready = WorkflowStep.objects.filter(pk__in=ready)
        _steps_send_on_commit(_steps_claim(ready))


def _workflow_result(workflow_id: str) -> Any:
    """The workflow's result: its last step's, or the list of its last steps' in order."""
    ends = WorkflowStep.objects.filter(workflow_id=workflow_id, children__isnull=True).order_by("position")
    results = dict(TaskResult.objects.filter(task_id__in=ends.values("task_id")).values_list("task_id", "result"))
    values = [json.loads(results[task_id]) for task_id in ends.values_list("task_id", flat=True)]
    return values[0] if len(values) == 1 else values


def workflow_step_failed(*, step_id: int, task_id: str, error: str) -> None:
    """A step's job failed for good (or was cancelled or purged): the workflow fails, naming it. Steps
    already sent run to their end; those not sent never will, and end REVOKED saying why, so nothing
    waits PENDING for ever. Retrying the step brings them back (workflow_step_retry)."""
    step = WorkflowStep.objects.filter(pk=step_id, task_id=task_id).first()
    if step is None:
        return
    with transaction.atomic():
        Workflow.objects.filter(pk=step.workflow_id, state=Workflow.State.RUNNING).update(
            state=Workflow.State.FAILURE, finished_at=timezone.now(),
            error=f"Step {step.path} ({step.task_name}, job {task_id}) {error}"[:10_000])
        unsent = WorkflowStep.objects.filter(workflow_id=step.workflow_id, sending_at__isnull=True)
        TaskResult.objects.filter(task_id__in=unsent.values("task_id"), status=states.PENDING).update(
            status=states.REVOKED, date_done=timezone.now(),
            result=_revoked_result(f"not run: step {step.path} of its workflow {error}"))


def workflow_steps_revoked(*, task_ids: list[str], why: str) -> None:
    """Jobs ended REVOKED by someone (cancelled, purged): a workflow step among them fails its workflow
    as a failed step would, so it never stands RUNNING with a step that will not run."""
    for step_id, task_id in WorkflowStep.objects.filter(task_id__in=task_ids).values_list("pk", "task_id"):
        workflow_step_failed(step_id=step_id, task_id=task_id, error=why)


def _workflow_stop(flow: Workflow, *, state: str, user: AbstractBaseUser | None, error: str) -> tuple[int, list[str]]:
    """End the workflow as `state`, and every step not finished REVOKED; how many, and the ids of those
    that were running."""
    now = timezone.now()
    Workflow.objects.filter(pk=flow.pk).update(state=state, finished_at=now, error=error, cancelled_by=user)
    unfinished = TaskResult.objects.filter(task_id__in=flow.steps.values("task_id")).exclude(
        status__in=states.READY_STATES)
    running = list(unfinished.exclude(status__in=[states.PENDING, states.RECEIVED]).values_list("task_id", flat=True))
    return unfinished.update(status=states.REVOKED, date_done=now, result=_revoked_result(error)), running


def workflow_cancel(*, workflow: Workflow, user: AbstractBaseUser) -> int:
    """Cancel a workflow: queued steps never start, running ones are stopped (SIGTERM), the rest never
    sent; audited. Returns how many steps were cancelled."""
    if workflow.state in (Workflow.State.SUCCESS, Workflow.State.REVOKED):
        raise JobNotCancellable(f"Workflow {workflow.id} already ended ({workflow.get_state_display().lower()}); "
                                "there is nothing to cancel.")
    with transaction.atomic():
        cancelled, running = _workflow_stop(workflow, state=Workflow.State.REVOKED, user=user, error=f"cancelled by {user}")
        JobAction.objects.create(workflow=workflow, kind=JobAction.Kind.CANCEL, actor=user,
                                 detail=f"{cancelled} steps cancelled, {len(running)} of them stopped while running")
        if running:  # the rest are REVOKED rows: a worker that receives one skips it (JobTask)
            transaction.on_commit(lambda: current_app.control.revoke(running, terminate=True, signal="SIGTERM"))
    return cancelled


def workflow_step_retry(*, result: TaskResult, user: AbstractBaseUser) -> TaskResult:
    """Run a failed step of a failed workflow again, in its place: the workflow runs again and goes on
    downstream from it once it succeeds. Audited like a job's retry."""
    record = result.record
    step = WorkflowStep.objects.select_related("workflow").get(pk=record.step_id)
    with transaction.atomic():
        task_id = new_task_id()
        _job_records_create([{
            "task_id": task_id, "task_name": step.task_name, "args": [], "kwargs": step.kwargs,
            "queue": record.queue, "periodic_task_name": None, "launched_by": user,
            "origin": JobRecord.Origin.RETRY, "retry_of": record, "step_id": step.pk,
        }])
        WorkflowStep.objects.filter(pk=step.pk).update(task_id=task_id, counted=False, sending_at=timezone.now(),
                                                       sent_at=None)
        Workflow.objects.filter(pk=step.workflow_id).update(state=Workflow.State.RUNNING, finished_at=None, error="")
        # The steps its failure left unsent wait again (the failure ended them REVOKED, "not run").
        unsent = step.workflow.steps.filter(sending_at__isnull=True).exclude(pk=step.pk)
        TaskResult.objects.filter(task_id__in=unsent.values("task_id"), status=states.REVOKED).update(
            status=states.PENDING, date_done=timezone.now(), result=None)
        JobAction.objects.create(record=record, workflow_id=step.workflow_id, kind=JobAction.Kind.RETRY, actor=user,
                                 detail=f"as {task_id}, in its workflow")
        step.task_id = task_id
        # Steps that became ready while the workflow stood failed go too.
        _steps_send_on_commit([step, *_steps_claim(step.workflow.steps.all())])
    return selectors.jobs_with_details().get(task_id=task_id)


WORKFLOW_REPAIR_AFTER = timedelta(minutes=1)


def workflows_repair() -> int:
    """Maintenance: finish what a worker killed at the wrong moment left undone in running workflows —
    a success not yet counted in its children, steps claimed but never sent. Returns how many steps."""
    before = timezone.now() - WORKFLOW_REPAIR_AFTER
    running = WorkflowStep.objects.filter(workflow__state=Workflow.State.RUNNING)
    done = TaskResult.objects.filter(status=states.SUCCESS, date_done__lt=before).values("task_id")
    uncounted = list(running.filter(counted=False, task_id__in=done).values_list("pk", "task_id"))
    for step_id, task_id in uncounted:
        workflow_step_succeeded(step_id=step_id, task_id=task_id)
    pending = TaskResult.objects.filter(status=states.PENDING).values("task_id")
    # A failed workflow's steps claimed before it failed were due to run, as its running ones do.
    claimed = WorkflowStep.objects.filter(workflow__state__in=[Workflow.State.RUNNING, Workflow.State.FAILURE])
    unsent = list(claimed.filter(sent_at__isnull=True, sending_at__lt=before, task_id__in=pending))
    try:
        _workflow_steps_send(unsent)
    except OperationalError as exc:
        logger.warning("Workflow steps still not sent: %s", exc)
    return len(uncounted) + len(unsent)
