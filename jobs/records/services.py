"""Writes of job records: every job recorded PENDING in one statement before it is published (a job
sent from code outside a transaction: while it is published, alongside.py), what a failed publish
leaves true, a job sent again under its id, retries counted; a person's launch within their cap on
unfinished jobs (unfinished.py)."""
import json
import logging
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import timedelta
from functools import cache as memoized
from typing import Any

from celery import Task, current_app, states
from celery.utils.saferepr import saferepr
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from ..catalog import PROGRESS, JobTask, new_task_id
from ..exceptions import JobQueueUnavailable
from ..limits.services import job_wait, passing
from ..results.backend import DatabaseBackend
from . import alongside
from .models import JobRecord, UniqueKey
from .unfinished import unfinished_limit_check, unfinished_taken

logger = logging.getLogger(__name__)


def job_queue(task_name: str) -> str:
    """The queue a job goes to when no queue is given: the one the task routes send it to."""
    task = current_app.tasks.get(task_name)
    given = {"queue": task.queue} if getattr(task, "queue", None) else {}  # a task's own (django.tasks' queue_name)
    return current_app.amqp.router.route(given, task_name)["queue"].name


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
# One job (a launch, a job sent from code): two plain INSERTs in one round trip and one transaction, the
# record taking the result row's id from its sequence (this session's own). A fifth less of
# PostgreSQL's work than the statement above, which it plans for any number of jobs, and half the
# Python (bench_throughput, docs/explanation/benchmarks.md).
RECORD_JOB_SQL = """
INSERT INTO {results} (task_id, task_name, status, task_args, task_kwargs, content_type, content_encoding,
                       periodic_task_name, date_created, date_done)
VALUES (%s, %s, %s, %s, %s, 'application/json', 'utf-8', %s, %s, %s);
INSERT INTO {records} (result_id, launched_by_id, origin, arguments, queue, retry_of_id, step_id, attempts, last_error,
                       deliveries)
VALUES (currval(pg_get_serial_sequence('{results}', 'id')), %s, %s, %s, %s, %s, %s, 1, '', '[]')
"""


@memoized
def record_job_sql() -> str:
    return RECORD_JOB_SQL.format(results=TaskResult._meta.db_table, records=JobRecord._meta.db_table)


def job_row(job: dict[str, Any]) -> tuple:
    """The values one job's record is written with (RECORD_JOBS_SQL's job)."""
    launched_by, retry_of = job.get("launched_by"), job.get("retry_of")
    return (
        # task_args/kwargs encoded as the worker will store them once it picks the job up
        job["task_id"], job["task_name"], json.dumps(saferepr(tuple(job["args"]))),
        json.dumps(saferepr(job["kwargs"])), job["periodic_task_name"],
        launched_by.pk if launched_by else None,
        job.get("origin") or (JobRecord.Origin.SCHEDULE if job["periodic_task_name"] else JobRecord.Origin.CODE),
        json.dumps({"args": list(job["args"]), "kwargs": job["kwargs"]}), job["queue"],
        retry_of.pk if retry_of else None, job.get("step_id"),
    )


def job_record_statement(job: dict[str, Any]) -> tuple[str, list]:
    """One job's record: RECORD_JOB_SQL and its parameters."""
    task_id, task_name, task_args, task_kwargs, periodic_task_name, *record = job_row(job)
    now = timezone.now()
    return record_job_sql(), [task_id, task_name, states.PENDING, task_args, task_kwargs, periodic_task_name,
                              now, now, *record]


def job_records_create(jobs: list[dict[str, Any]]) -> None:
    """Record PENDING, in one round trip, jobs given as dicts of task_id, task_name, args, kwargs,
    queue, periodic_task_name and optionally launched_by, origin, retry_of, step_id."""
    with connection.cursor() as cursor:
        if len(jobs) == 1:
            cursor.execute(*job_record_statement(jobs[0]))
            return
        sql = RECORD_JOBS_SQL.format(
            values=", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(jobs)),
            results=TaskResult._meta.db_table, records=JobRecord._meta.db_table,
            user_key=JobRecord._meta.get_field("launched_by").target_field.db_type(connection),
            record_key=JobRecord._meta.pk.target_field.db_type(connection),
            step_key=JobRecord._meta.get_field("step").target_field.db_type(connection),
        )
        now = timezone.now()
        cursor.execute(sql, [*(value for job in jobs for value in job_row(job)), states.PENDING, now, now])


def job_enqueue(*, task: JobTask, arguments: dict[str, Any], options: dict[str, Any],
                launched_by: AbstractBaseUser | None = None, origin: str = JobRecord.Origin.CODE,
                retry_of: JobRecord | None = None, task_id: str | None = None) -> tuple[str, bool]:
    """Record a job PENDING, its arguments validated already (JobTask.json_arguments), and publish it
    once the transaction commits (outside one, before this returns). Returns the id of the job that
    stands for this launch and whether it is a new one: a unique job whose key another holds launches
    nothing, and the id is that one's. job_launch, without reading the row back for a page."""
    task_id = task_id or new_task_id()
    if launched_by is None and retry_of is None and origin == JobRecord.Origin.CODE and not (task.unique or task.limit) \
            and alongside.usable():
        # A record that says no more than the message: written by the publish, alongside it (job_published).
        job_publish(task, task_id, arguments, options, recorded_before=False)
        return task_id, True
    # A person's launch takes its job from their JOBS_MAX_UNFINISHED headroom (unfinished.py), a unique job
    # its key; otherwise the record is one statement, in the caller's transaction if there is one (not a
    # BEGIN and COMMIT of its own).
    with unfinished_taken(launched_by, 1) as taken, \
            transaction.atomic() if launched_by is not None or task.unique or task.limit else nullcontext():
        if task.unique and (holder := unique_key_claim(
                task, task_id, arguments, replacing=retry_of.result.task_id if retry_of is not None else None)):
            return holder, False
        if not taken:
            unfinished_limit_check(launched_by, 1)
        job_records_create([{
            "task_id": task_id, "task_name": task.name, "args": [], "kwargs": arguments,
            "queue": options.get("queue") or job_queue(task.name),
            "periodic_task_name": (options.get("headers") or {}).get("periodic_task_name"),
            "launched_by": launched_by, "origin": origin, "retry_of": retry_of,
        }])
        if task.limit is not None:
            job_wait(task=task, task_id=task_id, kwargs=arguments, options=options)
        else:
            transaction.on_commit(lambda: job_publish(task, task_id, arguments, options))
    return task_id, True


# The states in which a job holds its key, by Unique.until.
UNIQUE_HOLDING = {"started": [states.PENDING, states.RECEIVED, states.RETRY],
                  "finished": [states.PENDING, states.RECEIVED, states.RETRY, states.STARTED, PROGRESS]}
UNIQUE_CLAIM_SQL = """
INSERT INTO {keys} AS held (key, job_name, task_id, held_since, held_until)
VALUES (%(key)s, %(name)s, %(task_id)s, %(now)s, %(until)s)
ON CONFLICT (key) DO UPDATE SET task_id = EXCLUDED.task_id, held_since = EXCLUDED.held_since,
                                held_until = EXCLUDED.held_until
WHERE held.held_until <= EXCLUDED.held_since OR held.task_id = %(replacing)s
   OR (%(by_state)s AND EXISTS (SELECT FROM {results} AS result
                                WHERE result.task_id = held.task_id AND NOT result.status = ANY(%(holding)s)))
RETURNING task_id
"""


def unique_key_claim(task: JobTask, task_id: str, arguments: dict[str, Any], replacing: str | None = None) -> str | None:
    """Claim for job `task_id` the key of this launch of unique `task` (Unique): None when it is this
    job's now, else the id of the job holding it.

    One statement, safe between web processes: of two launches at once, the second waits for the
    first's transaction on the key's row, then sees the first as its holder. A key passes on only when
    its holder is seen to have let it go (its result row in a state past `until`) or its time is up:
    `until` for a period; JOBS_UNIQUE_MAX_HOLD after the launch otherwise, the bound on a key whose job
    was lost before it reached the queue. A job lost later lets its key go when it settles: run again
    after its worker died, or failed by stale_jobs_fail (the task time limit and 5 minutes). A retry of
    the job holding the key (`replacing`, its id) takes the key over."""
    unique = task.unique
    now = timezone.now()
    period = unique.until if isinstance(unique.until, timedelta) else None
    parameters = {"key": unique.key(task.name, arguments), "name": task.name, "task_id": task_id, "now": now,
                  "until": now + (period or settings.JOBS_UNIQUE_MAX_HOLD), "by_state": period is None,
                  "holding": UNIQUE_HOLDING.get(unique.until, []), "replacing": replacing}
    sql = UNIQUE_CLAIM_SQL.format(keys=UniqueKey._meta.db_table, results=TaskResult._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        if cursor.fetchone():
            return None
    # The holder, committed (a statement of its own sees what the claim waited for).
    return UniqueKey.objects.filter(key=parameters["key"]).values_list("task_id", flat=True).get()


def job_recorded(task: Task | None) -> bool:
    """Whether a job sent of `task` gets a PENDING record: one whose outcome the database stores."""
    return task is not None and not task.ignore_result and isinstance(current_app.backend, DatabaseBackend)


# The ids of the jobs being published that were recorded already, with more than a message tells.
recorded: ContextVar[frozenset[str]] = ContextVar("recorded", default=frozenset())


@contextmanager
def jobs_recorded(jobs: list[dict[str, Any]]):
    """Record PENDING the jobs about to be published in the block (see job_records_create), in
    one statement; publishing them inside the block records nothing more."""
    if jobs:
        job_records_create(jobs)
    token = recorded.set(frozenset(job["task_id"] for job in jobs))
    try:
        yield
    finally:
        recorded.reset(token)


def job_publish_failed(*, task_id: str, error: Exception | str) -> bool:
    """Settle a recorded job whose publish failed, so that what the launcher is told stays true.

    A publish can fail after its message reached the queue (the broker's confirm was lost with its
    connection), so the job is marked REVOKED, which no worker ever runs (jobs/results/managers.py), rather
    than FAILURE, which a worker would overwrite by running it. Only while it is still PENDING:
    if a worker has taken it already, the message did get through, and False says it was launched
    after all."""
    alongside.record_finish()  # a record written alongside the publish is committed first
    return bool(TaskResult.objects.filter(task_id=task_id, status=states.PENDING).update(
        status=states.REVOKED,
        result=json.dumps({"exc_type": "JobQueueUnavailable", "exc_message": [
            f"Not queued: the job queue was unavailable ({error}). It will not run; launch it again."]}),
        date_done=timezone.now(),
    ))


def job_publish(task: JobTask, task_id: str, arguments: dict[str, Any], options: dict[str, Any],
                recorded_before: bool = True) -> None:
    """Publish a job; JobQueueUnavailable, its record settled, if the broker would not take it.
    `recorded_before=False`: its record is written by the publish (job_published)."""
    token = recorded.set(frozenset([task_id]) if recorded_before else recorded.get())
    try:
        task.apply_async(kwargs=arguments, task_id=task_id, **options)
    except OperationalError as exc:
        if job_publish_failed(task_id=task_id, error=exc):
            raise JobQueueUnavailable(f"The job queue is unavailable ({exc}); job {task_id} was not enqueued "
                                      "and will not run.") from exc
        logger.warning("Job %s: its publish reported %s, but a worker has taken it: launched.", task_id, exc)
    finally:
        recorded.reset(token)


def job_record_published(*, task_id: str, task_name: str, args: list, kwargs: dict, queue: str,
                         periodic_task_name: str | None) -> None:
    """Record PENDING a job that beat or code sent without recording it first (job_launch does)."""
    if task_id in recorded.get():
        return
    job = {"task_id": task_id, "task_name": task_name, "args": args, "kwargs": kwargs, "queue": queue,
           "periodic_task_name": periodic_task_name}
    # Its answer read once the broker has the message (job_record_confirmed).
    if not (alongside.usable() and alongside.record_start(*job_record_statement(job),
                                                          again=lambda: job_record_again(job))):
        job_records_create([job])


def job_record_confirmed() -> None:
    """The broker confirmed a job's message: its record, written alongside, is committed (or written again)."""
    alongside.record_finish()


def job_record_again(job: dict[str, Any]) -> None:
    """Write the record of a job already published: a worker that picked it up first may have
    written its row (a job's row with no record, as for any job sent without one), which the
    record then takes."""
    try:
        job_records_create([job])
    except IntegrityError:
        _, _, _, _, _, launched_by, origin, arguments, queue, retry_of, step = job_row(job)
        result = TaskResult.objects.filter(task_id=job["task_id"]).values_list("pk", flat=True).first()
        if result is not None:  # else gone again: nothing to add the record to
            JobRecord.objects.get_or_create(result_id=result, defaults={
                "launched_by_id": launched_by, "origin": origin, "arguments": json.loads(arguments), "queue": queue,
                "retry_of_id": retry_of, "step_id": step})


def job_send_again(*, task: JobTask, countdown: int) -> None:
    """Send the job a worker holds (task.request) again under its id, as it came, `countdown` seconds
    from now; its record stays as it is."""
    ids = frozenset([task.request.id])
    token, passing_token = recorded.set(ids), passing.set(ids)  # a limited job went through its limit already
    try:
        task.signature_from_request(countdown=countdown).apply_async()
    finally:
        recorded.reset(token)
        passing.reset(passing_token)


def job_record_retried(*, task_id: str, reason: str) -> None:
    """Count a Celery retry of the job and keep the error that caused it."""
    JobRecord.objects.filter(result__task_id=task_id).update(attempts=F("attempts") + 1, last_error=reason)


def revoked_result(message: str) -> str:
    return json.dumps({"exc_type": "TaskRevokedError", "exc_message": [message]})


