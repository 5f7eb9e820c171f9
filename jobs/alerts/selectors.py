"""Reads of the alerts: a rule's measure now, and the incidents firing."""
from datetime import timedelta

from ..stats.models import JobStats
from ..stats.selectors import stats_summary
from .models import AlertIncident, AlertRule

# A failure rate over fewer jobs than this says little (1 of 1 is 100%): such windows do not fire.
ALERT_MIN_JOBS = 5


def alert_measure(rule: AlertRule, *, now) -> float | None:
    """The rule's measure over its last `minutes` of per-minute statistics, or None when too few
    jobs finished to say."""
    rows = JobStats.objects.filter(period=JobStats.Period.MINUTE, start__gte=now - timedelta(minutes=rule.minutes))
    if rule.task_name:
        rows = rows.filter(task_name=rule.task_name)
    summary = stats_summary(rows.only(*JobStats.STATE_FIELDS.values(), "wait", "run"))
    if rule.measure == AlertRule.Measure.FAILURE_RATE:
        return summary["failure_rate"] * 100 if summary["total"] >= ALERT_MIN_JOBS else None
    return summary["wait_p95"]


def alerts_firing() -> list[AlertIncident]:
    """The incidents going on now, for the overview."""
    return list(AlertIncident.objects.filter(ended_at__isnull=True).select_related("rule"))
