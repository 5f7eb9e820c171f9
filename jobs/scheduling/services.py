"""Writes of scheduling: a periodic task's job launched now, as beat would send it."""
from django.contrib.auth.models import AbstractBaseUser
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry
from django_celery_results.models import TaskResult

from ..launching.services import job_launch
from ..records.models import JobRecord


def periodic_task_run_now(*, periodic_task: PeriodicTask, launched_by: AbstractBaseUser | None = None) -> TaskResult:
    """Launch a periodic task's job now, with the arguments and options beat would send it with."""
    # Beat's own reading of the row: args, kwargs, queue, exchange, routing key, priority,
    # expiry and headers, including the periodic_task_name that tags its results.
    entry = ModelEntry(PeriodicTask.objects.get(pk=periodic_task.pk))
    return job_launch(
        name=entry.task, args=entry.args, kwargs=entry.kwargs, options=entry.options,
        launched_by=launched_by, origin=JobRecord.Origin.SCHEDULE,
    )
