"""The engine's own maintenance tasks. Jobs are declared with @job in the apps that own them."""
from celery import shared_task

from .alerts import services as alerts
from .launching import services as launching
from .stats import services as stats
from .workflows import services as workflows


@shared_task(name="jobs.stale_jobs_fail")
def stale_jobs_fail() -> int:
    """Maintenance, every 5 minutes: jobs whose worker was lost mid-run do not stay STARTED."""
    return launching.stale_jobs_fail()


@shared_task(name="jobs.job_stats_count", ignore_result=True)
def job_stats_count() -> int:
    """Maintenance, every minute: count the jobs finished since for the charts and metrics, then
    check the alert rules against the new counts."""
    counted = stats.job_stats_count()
    alerts.alerts_evaluate()
    return counted


@shared_task(name="jobs.workflows_repair")
def workflows_repair() -> int:
    """Maintenance, every minute: steps a killed worker left unsent or uncounted go on."""
    return workflows.workflows_repair()
