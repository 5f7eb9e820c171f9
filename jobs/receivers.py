"""Signal receivers, connected in JobsConfig.ready(): they turn Celery's and Django's events into
service calls, and decide nothing else."""
from celery import current_app
from django.conf import settings

from . import services
from .queues import dead_letter_queue
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
    """worker_ready: declare the exchange the job queues dead-letter to, and the queue that keeps
    those messages (for inspection). Declaring is idempotent."""
    queue = dead_letter_queue(name=settings.DEAD_LETTER_QUEUE, exchange=settings.DEAD_LETTER_EXCHANGE,
                              queue_type=settings.BROKER_QUEUE_TYPE, retention=settings.DEAD_LETTER_RETENTION)
    with sender.app.connection_for_write() as connection:
        queue.declare(channel=connection.default_channel)
