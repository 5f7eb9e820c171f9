"""Writes and side effects of the engine: launching, recording, retrying and cancelling jobs."""
import json
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from celery import Task, current_app, states
from celery.utils.saferepr import saferepr
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from . import selectors
from .catalog import PROGRESS, JobTask, find_job, new_task_id
from .exceptions import JobNotCancellable, JobQueueUnavailable
from .models import JobAction, JobRecord
from .results import DatabaseBackend


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
          queue, retry_of_id) AS (VALUES {values}),
result AS (
    INSERT INTO {results}
        (task_id, task_name, status, task_args, task_kwargs, content_type, content_encoding,
         periodic_task_name, date_created, date_done)
    SELECT task_id, task_name, %s, task_args, task_kwargs, 'application/json', 'utf-8', periodic_task_name, %s, %s
    FROM job
    RETURNING id, task_id
)
INSERT INTO {records} (result_id, launched_by_id, origin, arguments, queue, retry_of_id, attempts, last_error)
SELECT result.id, job.launched_by_id::{user_key}, job.origin, job.arguments::jsonb, job.queue,
       job.retry_of_id::{record_key}, 1, ''
FROM result JOIN job USING (task_id)
"""


def _job_records_create(jobs: list[dict[str, Any]]) -> None:
    """Record PENDING, in one statement, jobs given as dicts of task_id, task_name, args, kwargs,
    queue, periodic_task_name and optionally launched_by, origin, retry_of."""
    now = timezone.now()
    sql = RECORD_JOBS_SQL.format(
        values=", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(jobs)),
        results=TaskResult._meta.db_table, records=JobRecord._meta.db_table,
        user_key=JobRecord._meta.get_field("launched_by").target_field.db_type(connection),
        record_key=JobRecord._meta.pk.target_field.db_type(connection),
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
            retry_of.pk if retry_of else None,
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


def job_publish_failed(*, task_id: str, error: Exception) -> None:
    """Mark FAILURE a recorded job that could not be published: a row left PENDING would claim a
    job that will never run."""
    TaskResult.objects.filter(task_id=task_id).update(
        status=states.FAILURE,
        result=json.dumps({"exc_type": "JobQueueUnavailable", "exc_message": [str(error)]}),
        date_done=timezone.now(),
    )


def _publish(task: JobTask, task_id: str, arguments: dict[str, Any], options: dict[str, Any]) -> None:
    token = _recorded.set(frozenset([task_id]))
    try:
        task.apply_async(kwargs=arguments, task_id=task_id, **options)
    except OperationalError as exc:
        job_publish_failed(task_id=task_id, error=exc)
        raise JobQueueUnavailable(f"The job queue is unavailable ({exc}); job {task_id} was not enqueued.") from exc
    finally:
        _recorded.reset(token)


def job_record_published(*, task_id: str, task_name: str, args: list, kwargs: dict, queue: str,
                         periodic_task_name: str | None) -> None:
    """Record PENDING a job that beat or code sent without recording it first (job_launch does)."""
    if task_id in _recorded.get():
        return
    _job_records_create([{"task_id": task_id, "task_name": task_name, "args": args, "kwargs": kwargs,
                          "queue": queue, "periodic_task_name": periodic_task_name}])


def job_record_retried(*, task_id: str, reason: str) -> None:
    """Count a Celery retry of the job and keep the error that caused it."""
    JobRecord.objects.filter(result__task_id=task_id).update(attempts=F("attempts") + 1, last_error=reason)


def job_retry(*, result: TaskResult, user: AbstractBaseUser) -> TaskResult:
    """Launch a job again with the same arguments, linked to the original, and audit it."""
    record = result.record
    with transaction.atomic():
        retried = job_launch(
            name=result.task_name, args=record.arguments.get("args", []), kwargs=record.arguments.get("kwargs", {}),
            options={"queue": record.queue} if record.queue else None,
            launched_by=user, origin=JobRecord.Origin.RETRY, retry_of=record,
        )
        JobAction.objects.create(record=record, kind=JobAction.Kind.RETRY, actor=user, detail=f"as {retried.task_id}")
    return retried


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
            result=json.dumps({"exc_type": "TaskRevokedError", "exc_message": [f"cancelled by {user}"]}),
        )
        JobAction.objects.create(
            record_id=result.pk, kind=JobAction.Kind.CANCEL, actor=user,
            detail="stopped while running" if running else "dequeued",
        )
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
