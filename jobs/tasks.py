"""The engine's own maintenance task. Jobs are declared with @job in the apps that own them."""
from celery import shared_task

from . import services


@shared_task(name="jobs.stale_jobs_fail")
def stale_jobs_fail() -> int:
    """Maintenance, every 5 minutes: jobs whose worker was lost mid-run do not stay STARTED."""
    return services.stale_jobs_fail()
