"""Reads of the limits: what each limit is, in words, and why a job waits on one."""
from datetime import datetime, timedelta

from celery import current_app
from django.utils import timezone
from django.utils.timesince import timesince

from ..catalog import JobTask, catalog
from .models import WaitingJob
from .services import limit_in_force


def limit_description(task: JobTask) -> str:
    """The limit in force, in words: '10/s per host', 'at most 1 running per owner', '50/s'."""
    rate, concurrency = limit_in_force(task)
    parts = [part for part in (rate, concurrency and f"at most {concurrency} running") if part]
    per = f" per {task.limit.per}" if task.limit.per else ""
    return " and ".join(parts) + per


def limit_waiting_reason(task_name: str, key: str, since: datetime) -> str:
    """Why a job waits on its limit, and for how long: for its job page, the API and the admin."""
    task = current_app.tasks.get(task_name)
    what = limit_description(task) if isinstance(task, JobTask) and task.limit else "its limit"
    waited = timezone.now() - since
    waited = f"{waited.seconds} s" if waited < timedelta(minutes=1) else timesince(since, depth=1)
    return f"Waiting on its limit, {what}{f' ({key})' if key else ''}, for {waited}."


def waiting_on_limits(cap: int = 10_000) -> dict[str, tuple[int, datetime | None]]:
    """By limited job of the catalog: how many wait on its limit (up to `cap`) and since when the oldest."""
    found = {}
    for name, task in catalog().items():
        if task.limit is None:
            continue
        waiting = WaitingJob.objects.filter(job_name=name, dispatched_at=None)
        oldest = waiting.order_by("waiting_since").values_list("waiting_since", flat=True).first()
        found[name] = (waiting[:cap].count() if oldest else 0, oldest)
    return found
