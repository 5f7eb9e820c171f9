"""Counting finished jobs into the statistics the charts, the alerts and /metrics read."""
import functools
import logging
from datetime import timedelta

from celery import states
from django.db import connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from ..records.models import JobRecord
from .histograms import BUCKET_SQL
from .models import JobStats, JobStatsProgress

logger = logging.getLogger(__name__)

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
    wait=BUCKET_SQL.format(ms="EXTRACT(EPOCH FROM r.date_started - r.date_created) * 1000"),
    run=BUCKET_SQL.format(ms="EXTRACT(EPOCH FROM r.date_done - r.date_started) * 1000"),
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
