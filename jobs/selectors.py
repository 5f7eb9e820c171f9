"""Reads shared by the API, the pages and the admin."""
import json
import uuid
from datetime import timedelta
from typing import Any

from celery import states
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_celery_results.models import TaskResult

from .catalog import PROGRESS
from .models import ContactImport

# Final and in-between states, as the pages and the API filter on them.
STATES = [states.PENDING, states.STARTED, PROGRESS, states.RETRY, states.SUCCESS, states.FAILURE, states.REVOKED]


def jobs_visible_to(*, user: AbstractBaseUser) -> QuerySet[TaskResult]:
    """Newest first: staff see every job, everyone else the jobs they launched."""
    jobs = (
        TaskResult.objects.select_related("job__launched_by", "job__retry_of__result")
        .prefetch_related("job__retried_as__result")
        .order_by("-date_created")
    )
    return jobs if user.is_staff else jobs.filter(job__launched_by=user)


PAGE_SIZE = 50


def jobs_page(*, user: AbstractBaseUser, status: str = "", task: str = "", page: int = 1) -> tuple[list[TaskResult], bool]:
    """One page of the jobs `user` may see, filtered, and whether another page follows.

    One row more than a page tells whether there is a next page, without counting every job.
    """
    jobs = jobs_visible_to(user=user)
    if status:
        jobs = jobs.filter(status=status)
    if task:
        jobs = jobs.filter(task_name=task)
    rows = list(jobs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def imports_visible_to(*, user: AbstractBaseUser) -> QuerySet[ContactImport]:
    """Staff see every CSV import, everyone else their own uploads."""
    return ContactImport.objects.all() if user.is_staff else ContactImport.objects.filter(uploaded_by=user)


def job_get(*, job_id: str, user: AbstractBaseUser) -> TaskResult | None:
    """The job with id `job_id` if `user` may see it, else None (also for ids that are not UUIDs)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    return jobs_visible_to(user=user).filter(task_id=job_id).first()


def job_outcome(record: TaskResult) -> tuple[Any, str | None]:
    """The job's return value once it succeeded, and its error message once one occurred."""
    if record.status == states.SUCCESS:
        return json.loads(record.result) if record.result else None, None
    if record.status in (states.FAILURE, states.REVOKED, states.RETRY) and record.result:
        exception = json.loads(record.result)
        parts = exception.get("exc_message") or ()
        message = parts if isinstance(parts, str) else " ".join(str(part) for part in parts)
        return None, f"{exception.get('exc_type', 'Error')}: {message}" if message else exception.get("exc_type")
    return None, None


def job_progress(record: TaskResult) -> dict[str, Any]:
    """How far the job is: current, total, percent (None while unknown) and a message."""
    if record.status == PROGRESS and record.result:
        meta = json.loads(record.result)
        current, total = meta.get("current"), meta.get("total")
        percent = round(100 * current / total, 1) if total else None
        return {"current": current, "total": total, "percent": percent, "message": meta.get("message", "")}
    return {"current": None, "total": None, "percent": 100.0 if record.status == states.SUCCESS else None,
            "message": ""}


def job_details(record: TaskResult) -> dict[str, Any]:
    """Everything the API and the pages show about one job."""
    result, error = job_outcome(record)
    job = getattr(record, "job", None)
    return {
        "id": record.task_id,
        "task": record.task_name,
        "status": record.status,
        "result": result,
        "error": error,
        "progress": job_progress(record),
        "arguments": job.arguments if job else None,
        "queue": job.queue if job else None,
        "worker": record.worker,
        "launched_by": job.launched_by.get_username() if job and job.launched_by else None,
        "origin": job.origin if job else None,
        "periodic_task": record.periodic_task_name,
        "attempt": job.attempts if job else 1,
        "last_error": job.last_error if job else "",
        "retry_of": job.retry_of.result.task_id if job and job.retry_of else None,
        "retried_as": [retry.result.task_id for retry in job.retried_as.all()] if job else [],
        "created_at": record.date_created,
        "started_at": record.date_started,
        "done_at": record.date_done if record.status in states.READY_STATES else None,
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
