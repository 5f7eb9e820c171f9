"""Reads of job records: their details, who sees them, their outcome, how many there are."""
import json
import uuid
from typing import Any

from celery import current_app, states
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet, Subquery
from django_celery_results.models import TaskResult

from ..catalog import PROGRESS
from ..limits.models import WaitingJob
from .models import JobRecord

# Final and in-between states, as the pages and the API filter on them.
STATES = [states.PENDING, states.STARTED, PROGRESS, states.RETRY, states.SUCCESS, states.FAILURE, states.REVOKED]


def jobs_with_details() -> QuerySet[TaskResult]:
    """Job rows with all job_details() reads, in one query: record, launcher, retry links, the limit it
    waits on (limit_key, limit_waiting_since)."""
    retries = JobRecord.objects.filter(retry_of=OuterRef("pk")).order_by("result_id").values("result__task_id")
    waiting = WaitingJob.objects.filter(task_id=OuterRef("task_id"), dispatched_at=None)
    return TaskResult.objects.select_related("record__launched_by", "record__retry_of__result", "record__step").annotate(
        retried_as_ids=ArraySubquery(retries), limit_key=Subquery(waiting.values("key")),
        limit_waiting_since=Subquery(waiting.values("waiting_since")),
    )


def new_job_with_details(task_id: str) -> TaskResult:
    """A job just launched, as jobs_with_details() reads it, for one that is not a retry, no workflow's
    step and under no limit: nothing retries it yet and it waits on no limit, so its row and record are
    all there is to read (jobs_with_details() cost a launch a quarter of its CPU)."""
    result = TaskResult.objects.select_related("record__launched_by").get(task_id=task_id)
    result.retried_as_ids, result.limit_key, result.limit_waiting_since = [], None, None
    return result


def sees_every_job(user: AbstractBaseUser) -> bool:
    """Whether `user` sees everyone's jobs: the results admin's view permission, as in the admin."""
    return user.has_perm("django_celery_results.view_taskresult")


def jobs_visible_to(*, user: AbstractBaseUser) -> QuerySet[TaskResult]:
    """Newest first: every job for those who may see them all, else the jobs `user` launched."""
    jobs = jobs_with_details().order_by("-date_created")
    return jobs if sees_every_job(user) else jobs.filter(record__launched_by=user)


def may_act_on(user: AbstractBaseUser, result: TaskResult, permission: str) -> bool:
    """Whether `user` may retry or cancel (`permission`) the job: their own, or anyone's with the
    permission. Only jobs recorded at launch, whose arguments are kept, can be acted on."""
    record = getattr(result, "record", None)
    return record is not None and (record.launched_by_id == user.pk or user.has_perm(permission))


# Modules whose exceptions are stored by the arguments they are built from and say their message
# only as text (str): the engine's own.
EXCEPTIONS_WITH_MESSAGES = {"jobs.exceptions"}


def job_outcome(result: TaskResult) -> tuple[Any, str | None]:
    """The job's return value once it succeeded, and its error message once one occurred."""
    if result.status == states.SUCCESS:
        return json.loads(result.result) if result.result else None, None
    if result.status in (states.FAILURE, states.REVOKED, states.RETRY) and result.result:
        exception = json.loads(result.result)
        if exception.get("exc_module") in EXCEPTIONS_WITH_MESSAGES:  # stored by their arguments
            message = str(current_app.backend.exception_to_python(exception))
        else:
            parts = exception.get("exc_message") or ()
            message = parts if isinstance(parts, str) else " ".join(str(part) for part in parts)
        return None, f"{exception.get('exc_type', 'Error')}: {message}" if message else exception.get("exc_type")
    return None, None


def job_progress(result: TaskResult) -> dict[str, Any]:
    """How far the job is: current, total, percent (None while unknown) and a message."""
    if result.status == PROGRESS and result.result:
        meta = json.loads(result.result)
        current, total = meta.get("current"), meta.get("total")
        percent = round(100 * current / total, 1) if total else None
        return {"current": current, "total": total, "percent": percent, "message": meta.get("message", "")}
    return {"current": None, "total": None, "percent": 100.0 if result.status == states.SUCCESS else None,
            "message": ""}


UNFINISHED = [states.PENDING, states.STARTED, PROGRESS, states.RETRY]


# Unfinished jobs are counted exactly up to this many per state, through the status index; past it,
# the pages say "10000+" (how deep a backlog is, the queues' figures tell).
COUNT_CAP = 10_000


def unfinished_counts() -> dict[str, int]:
    """Jobs queued or running, by state, each count stopping at COUNT_CAP."""
    return {state: TaskResult.objects.filter(status=state)[:COUNT_CAP].count() for state in UNFINISHED}


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


WHO_MAY_ACT = ("Whoever launched a job may retry or cancel it; on anyone else's, that takes the 'Can retry jobs' "
               "or 'Can cancel jobs' permission.")
