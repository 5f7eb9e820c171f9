"""Reads shared by the API, the pages and the admin."""
import json
import uuid
from datetime import timedelta
from typing import Any

from celery import states
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Count, OuterRef, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_celery_results.models import TaskResult

from .catalog import PROGRESS
from .models import JobRecord

# Final and in-between states, as the pages and the API filter on them.
STATES = [states.PENDING, states.STARTED, PROGRESS, states.RETRY, states.SUCCESS, states.FAILURE, states.REVOKED]


def jobs_with_details() -> QuerySet[TaskResult]:
    """Job rows with all job_details() reads, in one query: record, launcher, retry links."""
    retries = JobRecord.objects.filter(retry_of=OuterRef("pk")).order_by("result_id").values("result__task_id")
    return TaskResult.objects.select_related("record__launched_by", "record__retry_of__result").annotate(
        retried_as_ids=ArraySubquery(retries)
    )


def sees_every_job(user: AbstractBaseUser) -> bool:
    """Whether `user` sees everyone's jobs: the results admin's view permission, as in the admin."""
    return user.has_perm("django_celery_results.view_taskresult")


def jobs_visible_to(*, user: AbstractBaseUser) -> QuerySet[TaskResult]:
    """Newest first: every job for those who may see them all, else the jobs `user` launched."""
    jobs = jobs_with_details().order_by("-date_created")
    return jobs if sees_every_job(user) else jobs.filter(record__launched_by=user)


PAGE_SIZE = 50
MAX_PAGE = 10_000  # 500,000 jobs deep; past that, a filter finds a job sooner than paging


class InvalidFilter(ValueError):
    """A list filter that cannot match: the message says which and why."""


def jobs_page(*, user: AbstractBaseUser, status: str = "", task: str = "", page: int = 1) -> tuple[list[TaskResult], bool]:
    """One page of the jobs `user` may see, filtered, and whether another page follows; InvalidFilter
    for an unknown status or a page out of range.

    One row more than a page tells whether there is a next page, without counting every job.
    """
    if status and status not in STATES:
        raise InvalidFilter(f"Unknown status {status!r}. Use one of: {', '.join(STATES)}.")
    if not 1 <= page <= MAX_PAGE:
        raise InvalidFilter(f"page must be between 1 and {MAX_PAGE:,}; filter by status or job to go further back.")
    jobs = jobs_visible_to(user=user)
    if status:
        jobs = jobs.filter(status=status)
    if task:
        jobs = jobs.filter(task_name=task)
    rows = list(jobs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def may_act_on(user: AbstractBaseUser, result: TaskResult, permission: str) -> bool:
    """Whether `user` may retry or cancel (`permission`) the job: their own, or anyone's with the
    permission. Only jobs recorded at launch, whose arguments are kept, can be acted on."""
    record = getattr(result, "record", None)
    return record is not None and (record.launched_by_id == user.pk or user.has_perm(permission))


def job_get(*, job_id: str, user: AbstractBaseUser) -> TaskResult | None:
    """The job with id `job_id` if `user` may see it, else None (also for ids that are not UUIDs)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    return jobs_visible_to(user=user).filter(task_id=job_id).first()


def job_outcome(result: TaskResult) -> tuple[Any, str | None]:
    """The job's return value once it succeeded, and its error message once one occurred."""
    if result.status == states.SUCCESS:
        return json.loads(result.result) if result.result else None, None
    if result.status in (states.FAILURE, states.REVOKED, states.RETRY) and result.result:
        exception = json.loads(result.result)
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


def job_details(result: TaskResult) -> dict[str, Any]:
    """Everything the API and the pages show about one job (a row of jobs_with_details())."""
    value, error = job_outcome(result)
    record = getattr(result, "record", None)
    return {
        "id": result.task_id,
        "task": result.task_name,
        "status": result.status,
        "result": value,
        "error": error,
        "progress": job_progress(result),
        "arguments": record.arguments if record else None,
        "queue": record.queue if record else None,
        "worker": result.worker,
        "launched_by": record.launched_by.get_username() if record and record.launched_by else None,
        "origin": record.origin if record else None,
        "periodic_task": result.periodic_task_name,
        "attempt": record.attempts if record else 1,
        "last_error": record.last_error if record else "",
        "retry_of": record.retry_of.result.task_id if record and record.retry_of else None,
        "retried_as": result.retried_as_ids or [],
        "created_at": result.date_created,
        "started_at": result.date_started,
        "done_at": result.date_done if result.status in states.READY_STATES else None,
    }


def job_counts_by_day(*, days: int) -> dict[str, dict[str, int]]:
    """Jobs created in the last `days` days, counted per day (in the site's time zone) and status."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        TaskResult.objects.filter(date_created__gte=since)
        .annotate(day=TruncDate("date_created", tzinfo=timezone.get_current_timezone()))
        .values("day", "status")
        .annotate(count=Count("id"))
        .order_by("day", "status")
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["day"].isoformat(), {})[row["status"]] = row["count"]
    return counts
