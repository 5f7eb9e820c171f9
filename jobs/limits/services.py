"""Sending limited jobs: each waits in the database (WaitingJob) from the moment it is sent, and is published
to its queue by key_dispatch when its limit lets it, in order within its key. Any process may dispatch
(a launch tries at once; every worker keeps trying, jobs/limits/dispatcher.py): a lock on the key's row
(LimitKey) lets one at a time send a key's jobs, and the others pass on to other keys.

The rate is a GCRA (a token bucket kept as one timestamp): a key's `due` moves on by one interval for each
job sent, and a job may go while `due` is at most BURST ahead of now. Under a concurrency limit a sent job
holds a slot of its key until its result is final: its worker dying does not free it, since RabbitMQ
delivers the job again, and it frees when that run ends (docs/how-to/add-a-job.md, "Limits")."""
import json
import logging
import math
import random
import time
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from celery import states
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from ..catalog import PROGRESS, JobTask, rate_interval
from .models import JobLimit, LimitKey, WaitingJob

logger = logging.getLogger(__name__)
UNFINISHED = [states.PENDING, states.RECEIVED, states.STARTED, PROGRESS, states.RETRY]
BURST = timedelta(milliseconds=200)  # how far ahead of the rate a key may go: a dispatcher's pass sends a few
BATCH = 100  # jobs sent by one pass over a key, and keys looked at in one pass over all
LIMITS_READ_SECONDS = 1.0  # how long a process trusts the limits operators set (JobLimit) before reading again
# The options a waiting job keeps, to be published as it was sent; the rest (a producer, links) are the sender's.
KEPT_OPTIONS = {"queue", "routing_key", "exchange", "priority", "headers", "expires", "retries", "time_limit",
                "soft_time_limit", "shadow"}

# The ids of the jobs a dispatcher (or a redelivery, jobs/records/services.py) is publishing now: they have
# waited their turn, and go to the queue.
passing: ContextVar[frozenset[str]] = ContextVar("passing", default=frozenset())
_limits_read: tuple[float, dict[str, tuple[str, int | None]]] = (-math.inf, {})


def limits_set() -> dict[str, tuple[str, int | None]]:
    """The limits operators set at run time, by job name: (rate or '', concurrency or None)."""
    global _limits_read
    read_at, limits = _limits_read
    if time.monotonic() - read_at > LIMITS_READ_SECONDS:
        limits = {row.job_name: (row.rate, row.concurrency) for row in JobLimit.objects.all()}
        _limits_read = (time.monotonic(), limits)
    return limits


def limit_in_force(task: JobTask) -> tuple[str | None, int | None]:
    """The job's rate and concurrency as they hold now: as declared, unless an operator changed them."""
    rate, concurrency = limits_set().get(task.name, ("", None))
    return rate or task.limit.rate, concurrency or task.limit.concurrency


def job_wait(*, task: JobTask, task_id: str, kwargs: dict[str, Any], options: dict[str, Any]) -> None:
    """Have a job sent of limited `task` (its arguments validated, as JSON) wait for its limit; it is
    dispatched once the caller's transaction commits if its limit lets it, later otherwise. A retry
    (the job waited before) waits again, at the back of its key's line and after its countdown."""
    now = timezone.now()
    not_before = options.get("eta") or now + timedelta(seconds=options.get("countdown") or 0)
    if isinstance(not_before, str):
        not_before = datetime.fromisoformat(not_before)
    kept = {name: value for name, value in options.items() if name in KEPT_OPTIONS and value is not None}
    if isinstance(kept.get("expires"), int | float):  # seconds from the send, not from the dispatch
        kept["expires"] = (now + timedelta(seconds=kept["expires"])).isoformat()
    elif isinstance(kept.get("expires"), datetime):
        kept["expires"] = kept["expires"].isoformat()
    key = task.limit.key(task.name, kwargs)
    waiting = WaitingJob(task_id=task_id, job_name=task.name, key=key, kwargs=kwargs, waiting_since=now,
                         options=json.loads(json.dumps(kept, default=str)), not_before=not_before)
    WaitingJob.objects.bulk_create([waiting], update_conflicts=True, unique_fields=["task_id"], update_fields=[
        "kwargs", "options", "waiting_since", "not_before", "dispatched_at"])
    transaction.on_commit(lambda: key_dispatch_now(task, key))


def key_dispatch_now(task: JobTask, key: str) -> None:
    """A job's first chance to go, as it is sent: when the broker or the database fails it now, the job
    waits, and a worker's dispatcher sends it once they are back."""
    try:
        key_dispatch(task, key)
    except (OperationalError, DatabaseError) as exc:
        logger.warning("Job %s: its key %r not dispatched now (%s); it waits for a worker's dispatcher.",
                       task.name, key, exc)


# The jobs (of a key) that have settled, or were cancelled while waiting, hold nothing: their rows go.
SETTLED_DELETE_SQL = """
DELETE FROM {waiting} AS waiting USING {results} AS result
WHERE result.task_id = waiting.task_id AND NOT result.status = ANY(%s) {of_key}
"""


def settled_delete(task: JobTask | None = None, key: str = "") -> None:
    """Free the slots of the jobs that have ended: of `task`'s `key`, or all (after a worker was lost, the
    next pass of any dispatcher)."""
    sql = SETTLED_DELETE_SQL.format(waiting=WaitingJob._meta.db_table, results=TaskResult._meta.db_table,
                                    of_key="AND waiting.job_name = %s AND waiting.key = %s" if task else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [UNFINISHED, *([task.name, key] if task else [])])


def job_ended(task: JobTask, task_id: str, kwargs: dict[str, Any]) -> None:
    """A job under a concurrency limit ended (or will be retried): its slot is free, and the next of its
    key goes now rather than at a dispatcher's next pass."""
    if WaitingJob.objects.filter(task_id=task_id, dispatched_at__isnull=False).delete()[0]:
        key_dispatch(task, task.limit.key(task.name, kwargs))


def key_dispatch(task: JobTask, key: str) -> int:
    """Send the jobs of `task`'s `key` that its limit lets go now, oldest first; how many. 0 at once when
    another process is sending this key's jobs."""
    return _key_dispatch(task, key)[0]


def _key_dispatch(task: JobTask, key: str) -> tuple[int, float | None]:
    """key_dispatch, and the seconds until the key's rate lets its next job go when the rate is what holds
    it back (None otherwise: no rate, its slots are taken, or nothing else waits)."""
    now = timezone.now()
    with transaction.atomic():
        locked = LimitKey.objects.select_for_update(skip_locked=True).filter(job_name=task.name, key=key)
        pace = locked.first()
        if pace is None:  # another process holds it, or this is the key's first job: its row is made, then locked
            LimitKey.objects.bulk_create([LimitKey(job_name=task.name, key=key, due=now)], ignore_conflicts=True)
            if (pace := locked.first()) is None:
                return 0, None
        rate, concurrency = limit_in_force(task)
        room = by_rate = BATCH
        if rate:  # first: it needs no query
            interval = timedelta(seconds=rate_interval(rate))
            window = max(BURST, interval)
            ahead = max(pace.due - now, timedelta(0))
            if ahead > window:  # never at a steady rate: a slower one set it, and an operator raised it since
                ahead = window - interval  # the new rate holds from now
            room = by_rate = math.floor((window - ahead) / interval)
            if room <= 0:
                return 0, (ahead - (window - interval)).total_seconds()
        if concurrency:
            settled_delete(task, key)
            running = WaitingJob.objects.filter(job_name=task.name, key=key, dispatched_at__isnull=False).count()
            room = min(room, concurrency - running)
        if room <= 0:
            return 0, None
        jobs = list(WaitingJob.objects.filter(job_name=task.name, key=key, dispatched_at=None, not_before__lte=now)
                    .order_by("waiting_since", "task_id")[:room])
        if not jobs:
            return 0, None
        cancelled = set(TaskResult.objects.filter(task_id__in=[job.task_id for job in jobs])
                        .exclude(status__in=UNFINISHED).values_list("task_id", flat=True))
        sent = [job for job in jobs if job.task_id not in cancelled]
        # Published inside the transaction: a publish that fails leaves them all waiting (one that got
        # through before it is delivered twice, and the result backend runs it once).
        token = passing.set(frozenset(job.task_id for job in sent))
        try:
            for job in sent:
                task.apply_async(kwargs=job.kwargs, task_id=job.task_id, **job.options)
        finally:
            passing.reset(token)
        rate_wait = None
        if rate:
            pace.due = now + ahead + len(sent) * interval
            pace.save(update_fields=["due"])
            if len(jobs) == by_rate:  # the rate is what stopped it: the rest go as it lets them
                rate_wait = max((pace.due - now - (window - interval)).total_seconds(), 0.0)
        if concurrency:
            WaitingJob.objects.filter(task_id__in=[job.task_id for job in sent]).update(dispatched_at=now)
            WaitingJob.objects.filter(task_id__in=cancelled).delete()
        else:
            WaitingJob.objects.filter(task_id__in=[job.task_id for job in jobs]).delete()
    return len(sent), rate_wait


def limits_dispatch(tasks: dict[str, JobTask]) -> tuple[int, float | None]:
    """One pass over up to BATCH keys with jobs due, in a random order (with more keys than that, each has
    its turn, whichever are held back): how many jobs it sent, and the seconds until a key's rate lets its
    next job go (None when no key waits on a rate: a concurrency slot is freed as its job ends, and the next
    of its key sent then). `tasks`: the limited jobs by name (a job not among them waits, for a process that
    knows it)."""
    keys = list(WaitingJob.objects.filter(dispatched_at=None, not_before__lte=timezone.now(), job_name__in=list(tasks))
                .values_list("job_name", "key").order_by().distinct())
    sent, waits = 0, []
    for name, key in random.sample(keys, min(len(keys), BATCH)):
        count, wait = _key_dispatch(tasks[name], key)
        sent += count
        if wait is not None:
            waits.append(wait)
    return sent, min(waits, default=None)
