"""Signal receivers, connected in JobsConfig.ready(): they turn Celery's and Django's events into
service calls, and decide nothing else."""
from celery import current_app

from . import broker, services, workers
from .scheduling import checks


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


def job_succeeded(sender, **kwargs) -> None:
    """task_success (on the worker, its result stored): a workflow's step sends what follows it."""
    step_id = getattr(sender.request, services.WORKFLOW_STEP_HEADER, None)
    if step_id is not None:
        services.workflow_step_succeeded(step_id=step_id, task_id=sender.request.id)


def job_failed(sender, task_id: str, exception: BaseException, **kwargs) -> None:
    """task_failure (on the worker, for good): a workflow's step fails its workflow."""
    step_id = getattr(sender.request, services.WORKFLOW_STEP_HEADER, None)
    if step_id is not None:
        services.workflow_step_failed(step_id=step_id, task_id=task_id, error=f"failed: {type(exception).__name__}: {exception}")


def periodic_task_saving(sender, instance, **kwargs) -> None:
    """pre_save of a PeriodicTask: the admin's checks, for rows saved from code and fixtures too.

    Not for a row saved disabled: beat disables a finished one-off, or a row it cannot send,
    by saving it, and that must work even when the row no longer validates."""
    if instance.enabled:
        checks.periodic_task_check(instance)


def crontab_saving(sender, instance, **kwargs) -> None:
    """pre_save of a CrontabSchedule: no crontab that can never fire, wherever it is saved from."""
    checks.crontab_check(instance)


def worker_ready(sender, **kwargs) -> None:
    """worker_ready: declare the dead-letter exchange and queue; start the worker's heartbeat."""
    broker.dead_letter_queue_declare()
    workers.worker_ready(sender)
