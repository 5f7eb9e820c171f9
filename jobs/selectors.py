"""Reads shared by the API, the pages and the admin."""
import json
import uuid
from datetime import timedelta
from typing import Any

from celery import states
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_celery_results.models import TaskResult


def job_get(*, job_id: str) -> TaskResult | None:
    """The job with id `job_id`, or None (also for ids that are not UUIDs)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    return TaskResult.objects.filter(task_id=job_id).first()


def job_outcome(record: TaskResult) -> tuple[Any, str | None]:
    """The job's return value once it succeeded, and its error message once one occurred."""
    if record.status == states.SUCCESS:
        return json.loads(record.result), None
    if record.status in (states.FAILURE, states.REVOKED, states.RETRY) and record.result:
        exception = json.loads(record.result)
        parts = exception.get("exc_message") or ()
        message = parts if isinstance(parts, str) else " ".join(str(part) for part in parts)
        return None, f"{exception.get('exc_type', 'Error')}: {message}" if message else exception.get("exc_type")
    return None, None


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
