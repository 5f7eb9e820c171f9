"""Writes and side effects: launching jobs, issuing tokens."""
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

from celery import states
from celery.utils.saferepr import saferepr
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from .catalog import find_job
from .models import ApiToken

LAST_USED_RESOLUTION = timedelta(minutes=1)


class JobQueueUnavailable(RuntimeError):
    """The broker refused or could not be reached; the job was recorded as failed, not queued."""


def job_launch(
    *,
    name: str,
    args: list | tuple = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    periodic_task_name: str | None = None,
) -> TaskResult:
    """Validate and record a job as PENDING, and enqueue it once the transaction commits.

    `options` are apply_async's (queue, priority, expires, headers...). Raises UnknownJob or
    InvalidArguments before anything is written. Outside a transaction the job is published
    before this returns; JobQueueUnavailable then means it was not.
    """
    job = find_job(name)
    arguments = job.json_arguments(args, kwargs)
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        record = TaskResult.objects.create(
            task_id=task_id,
            task_name=job.name,
            status=states.PENDING,
            # Encoded as the worker will store them once it picks the job up.
            task_args=json.dumps(saferepr(())),
            task_kwargs=json.dumps(saferepr(arguments)),
            content_type="application/json",
            content_encoding="utf-8",
            periodic_task_name=periodic_task_name,
        )
        transaction.on_commit(lambda: _publish(job, task_id, arguments, options or {}))
    return record


def _publish(job, task_id: str, arguments: dict[str, Any], options: dict[str, Any]) -> None:
    try:
        job.apply_async(kwargs=arguments, task_id=task_id, **options)
    except OperationalError as exc:
        # A row left PENDING would claim a job that will never run.
        TaskResult.objects.filter(task_id=task_id).update(
            status=states.FAILURE,
            result=json.dumps({"exc_type": "JobQueueUnavailable", "exc_message": [str(exc)]}),
            date_done=timezone.now(),
        )
        raise JobQueueUnavailable(f"The job queue is unavailable ({exc}); job {task_id} was not enqueued.") from exc


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Issue a token for `user`; returns the row and the token, which is not stored in clear."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:8], key_hash=ApiToken.hash_key(key))
    return token, key


def api_token_authenticate(*, key: str) -> AbstractBaseUser | None:
    """The active user owning token `key`, noting when the token was last used."""
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # One write a minute at most, not one per request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def periodic_task_run_now(*, periodic_task: PeriodicTask) -> TaskResult:
    """Launch a periodic task's job now, with the arguments and options beat would send it with."""
    # Beat's own reading of the row: args, kwargs, queue, exchange, routing key, priority,
    # expiry and headers, including the periodic_task_name that tags its results.
    entry = ModelEntry(PeriodicTask.objects.get(pk=periodic_task.pk))
    return job_launch(
        name=entry.task, args=entry.args, kwargs=entry.kwargs, options=entry.options, periodic_task_name=entry.name
    )
