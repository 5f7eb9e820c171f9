"""Reads of the statistics: finished jobs, queue wait and run time over a period."""
from datetime import timedelta
from typing import Any

from celery import states
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_celery_results.models import TaskResult

from ..records.selectors import STATES, unfinished_counts
from .histograms import histogram_add, percentile
from .models import JobStats, JobStatsProgress

# The charts: how far back each looks, and the statistics it reads (one row per point and group).
STATS_RANGES = {
    "hour": (timedelta(hours=1), JobStats.Period.MINUTE),
    "day": (timedelta(days=1), JobStats.Period.HOUR),
    "week": (timedelta(days=7), JobStats.Period.SIX_HOURS),
    "month": (timedelta(days=30), JobStats.Period.DAY),
}


class _Figures:
    """Counts by state and wait and run histograms, summed over statistics rows."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.wait: dict[str, int] = {}
        self.run: dict[str, int] = {}

    def add(self, counts: dict[str, int], wait: dict[str, int], run: dict[str, int]) -> "_Figures":
        for status, count in counts.items():
            self.counts[status] = self.counts.get(status, 0) + count
        histogram_add(self.wait, wait)
        histogram_add(self.run, run)
        return self

    def summary(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        return {
            "total": total, "counts": self.counts,
            "failure_rate": self.counts.get(states.FAILURE, 0) / total if total else None,
            "wait_p50": percentile(self.wait, 0.5), "wait_p95": percentile(self.wait, 0.95),
            "run_p50": percentile(self.run, 0.5), "run_p95": percentile(self.run, 0.95),
        }


def stats_summary(rows) -> dict[str, Any]:
    figures = _Figures()
    for row in rows:
        figures.add(row.counts, row.wait, row.run)
    return figures.summary()


def job_stats(*, period: str, task_name: str = "", queue: str = "") -> dict[str, Any]:
    """The charts' figures for the last `period` (hour, day, week, month), for every job or one job
    or queue: per point, jobs by final state and wait and run p50/p95; and the same per job and per
    queue over the whole period. Read from JobStats only, each row once."""
    span, resolution = STATS_RANGES[period]
    step = JobStats.LENGTH[resolution]
    points = int(span / step)
    first = JobStats.period_start(resolution, timezone.now()) - step * (points - 1)
    rows = JobStats.objects.filter(period=resolution, start__gte=first)
    if task_name:
        rows = rows.filter(task_name=task_name)
    if queue:
        rows = rows.filter(queue=queue)
    by_point = [_Figures() for _ in range(points)]
    by_job: dict[str, _Figures] = {}
    by_queue: dict[str, _Figures] = {}
    for start, name, queue_name, wait, run, *counted in rows.values_list(
            "start", "task_name", "queue", "wait", "run", *JobStats.STATE_FIELDS.values()):
        counts = dict(zip(JobStats.STATE_FIELDS, counted, strict=True))
        by_point[min(int((start - first) / step), points - 1)].add(counts, wait, run)
        by_job.setdefault(name, _Figures()).add(counts, wait, run)
        by_queue.setdefault(queue_name, _Figures()).add(counts, wait, run)
    total = _Figures()
    for figures in by_point:
        total.add(figures.counts, figures.wait, figures.run)
    return {
        "period": period, "starts": [first + step * index for index in range(points)], "step": step,
        "points": [figures.summary() for figures in by_point], "total": total.summary(),
        "jobs": {name: figures.summary() for name, figures in sorted(by_job.items())},
        "queues": {name: figures.summary() for name, figures in sorted(by_queue.items())},
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


def job_counts_now() -> dict[str, int]:
    """Jobs by state: those not yet finished (see unfinished_counts), and those that finished in the
    last hour (from the job statistics, plus the results finished since they last counted: a short
    range of the date_done index)."""
    counts = dict.fromkeys(STATES, 0)
    counts.update(unfinished_counts())
    since = timezone.now() - timedelta(hours=1)
    counted_to = JobStatsProgress.objects.filter(pk=1).values_list("counted_to", flat=True).first() or since
    counted = JobStats.objects.filter(period=JobStats.Period.MINUTE, start__gte=since).aggregate(
        **{state: Sum(field, default=0) for state, field in JobStats.STATE_FIELDS.items()})
    for status, count in counted.items():
        counts[status] += count
    recent = TaskResult.objects.filter(date_done__gt=max(counted_to, since), status__in=states.READY_STATES)
    for status, count in recent.values_list("status").annotate(Count("id")):
        counts[status] = counts.get(status, 0) + count
    return counts
