"""Signal receivers of job records, connected in JobsConfig.ready(): every job sent has a record, and
a retry is counted on it."""
import logging

from celery import current_app, states
from django_celery_results.models import TaskResult

from ..catalog import PROGRESS, RUNNING_ELSEWHERE_DELAY
from ..limits import services as limits
from . import services

logger = logging.getLogger(__name__)


def job_published(sender: str, headers: dict, body, routing_key: str, **kwargs) -> None:
    """before_task_publish: every job beat and code send is recorded PENDING, before it is published
    or, sent from code outside a transaction, while it is (alongside.py)."""
    # Not a retry of a recorded job (same id, same row), nor one whose outcome is not stored (its
    # row would stay PENDING).
    if headers.get("retries") or headers["id"] in limits.passing.get() or \
            not services.job_recorded(current_app.tasks.get(sender)):
        return
    args, kwargs, _ = body
    services.job_record_published(
        task_id=headers["id"], task_name=sender, args=args, kwargs=kwargs, queue=routing_key,
        periodic_task_name=headers.get("periodic_task_name"),
    )


def job_publish_confirmed(**kwargs) -> None:
    """after_task_publish: the broker has the message; the record written alongside it is committed."""
    services.job_record_confirmed()


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


def controlled_job_sending(sender, task, task_id: str, args, kwargs: dict, options: dict, **_) -> str | None:
    """A job with flow control sent (`.delay()`, `apply_async`, beat, a workflow, a retry): the id of the
    job that stands for it, or None to publish it as it is.

    A unique job sent from code has its key claimed and is recorded, as a launch is (job_enqueue); one
    recorded already (a launch's own publish, beat's, a workflow step's) is published. A limited job
    waits for its limit instead of being published (jobs/limits), unless it is being sent from there
    or again under its id (a redelivery's, job_send_again): the first time it is sent, and at each
    retry, so that retries count."""
    if task_id in limits.passing.get():
        return None
    if task_id in services.recorded.get() or not services.job_recorded(task) or \
            TaskResult.objects.filter(task_id=task_id).exists():
        if task.limit is None:
            return None
        limits.job_wait(task=task, task_id=task_id, kwargs=task.json_arguments(args, kwargs), options=options)
        return task_id
    standing, _ = services.job_enqueue(task=task, arguments=task.json_arguments(args, kwargs), options=options,
                                       task_id=task_id)
    return standing
