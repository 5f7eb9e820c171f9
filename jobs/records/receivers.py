"""Signal receivers of job records, connected in JobsConfig.ready(): every job sent has a record, and
a retry is counted on it."""
import logging

from celery import current_app, states
from django_celery_results.models import TaskResult

from ..catalog import PROGRESS, RUNNING_ELSEWHERE_DELAY
from . import services

logger = logging.getLogger(__name__)


def job_published(sender: str, headers: dict, body, routing_key: str, **kwargs) -> None:
    """before_task_publish: every job beat and code send is recorded PENDING before it can run."""
    # Not a retry of a recorded job (same id, same row), nor one whose outcome is not stored (its
    # row would stay PENDING).
    if headers.get("retries") or not services.job_recorded(current_app.tasks.get(sender)):
        return
    args, kwargs, _ = body
    services.job_record_published(
        task_id=headers["id"], task_name=sender, args=args, kwargs=kwargs, queue=routing_key,
        periodic_task_name=headers.get("periodic_task_name"),
    )


def job_retried(sender, request, reason, **kwargs) -> None:
    """task_retry (on the worker): count the attempt and keep the error that caused it."""
    services.job_record_retried(task_id=request.id, reason=str(reason))


def settled_job_delivered(sender, task, settled: str, **kwargs) -> None:
    """A job delivered again while a run of it may still be going on elsewhere (the broker handed the
    message on after a connection loss or a node's crash): not a second run at the same time. Sent
    again for later, under its id, before this delivery is acknowledged; by then that run has ended
    (the job is settled, and this does nothing) or its worker is known to be gone (the lease ran out,
    and this runs it)."""
    if settled not in (states.STARTED, PROGRESS):
        return
    logger.warning("Job %s (%s) may still be running on %s: trying again in %d s, not beside it.",
                   task.request.id, task.name, task.request.job_running_on or "another worker",
                   RUNNING_ELSEWHERE_DELAY)
    services.job_send_again(task=task, countdown=RUNNING_ELSEWHERE_DELAY)


def unique_job_sending(sender, task, task_id: str, args, kwargs: dict, options: dict, **_) -> str | None:
    """A unique job sent from code (`.delay()`, `apply_async`): its key claimed, recorded and published
    once the caller's transaction commits, as a launch is; the id of the job that stands for it. None
    for a send already recorded (a launch's own publish, a retry or a job sent again under its id):
    Celery publishes it as it is."""
    if task_id in services.recorded.get() or not services.job_recorded(task) or \
            TaskResult.objects.filter(task_id=task_id).exists():
        return None
    standing, _ = services.job_enqueue(task=task, arguments=task.json_arguments(args, kwargs), options=options,
                                       task_id=task_id)
    return standing
