"""Launching, retrying and cancelling jobs: what the pages, the API, the admin and code call."""
import json
from datetime import timedelta
from typing import Any

from celery import current_app, states
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from ..catalog import PROGRESS, find_job
from ..exceptions import JobNotCancellable, JobNotRetryable
from ..records.models import JobAction, JobRecord
from ..records.selectors import jobs_with_details, new_job_with_details
from ..records.services import job_enqueue, revoked_result
from ..workflows.services import workflow_step_retry, workflow_steps_revoked
from . import selectors


def job_launch(
    *,
    name: str,
    args: list | tuple = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    launched_by: AbstractBaseUser | None = None,
    origin: str = JobRecord.Origin.CODE,
    retry_of: JobRecord | None = None,
    system: bool = False,
) -> TaskResult:
    """Validate and record a job as PENDING, enqueue it once the transaction commits, and return
    its row as the API and pages show it. For a unique job (job(unique=...)) whose key another holds,
    nothing is launched and the row is that job's: `result.launched` is False then, True otherwise.

    A person (`launched_by`) may launch only the jobs the catalog allows them (staff-only jobs are
    for staff); `system` launches made on someone's behalf (an upload's import) skip that check.
    `options` are apply_async's (queue, priority, expires, headers...). Raises a JobLaunchError
    before anything is written; outside a transaction the job is published before this returns,
    and JobQueueUnavailable then means it was not.
    """
    task = find_job(name, user=None if system else launched_by)
    arguments = task.json_arguments(args, kwargs)
    task_id, launched = job_enqueue(task=task, arguments=arguments, options=options or {},
                                    launched_by=launched_by, origin=origin, retry_of=retry_of)
    # Read once the launch's transaction (and its per-person lock, jobs/records/services.py) is over:
    # another launch of the same person waits on nothing but the record.
    if launched and retry_of is None and task.limit is None:
        result = new_job_with_details(task_id)
    else:
        result = jobs_with_details().get(task_id=task_id)
    result.launched = launched
    return result


def job_retry(*, result: TaskResult, user: AbstractBaseUser) -> TaskResult:
    """Launch a job again with the same arguments, linked to the original, and audit it; a workflow's
    step is retried in its place, so the workflow goes on from it."""
    result.refresh_from_db(fields=["status"])  # as it is now, not as the page that asked saw it
    if (refusal := selectors.job_retry_refusal(result)) is not None:
        raise JobNotRetryable(refusal)
    record = result.record
    if record.step_id:
        return workflow_step_retry(result=result, user=user)
    with transaction.atomic():
        retried = job_launch(
            name=result.task_name, args=record.arguments.get("args", []), kwargs=record.arguments.get("kwargs", {}),
            options={"queue": record.queue} if record.queue else None,
            launched_by=user, origin=JobRecord.Origin.RETRY, retry_of=record,
        )
        JobAction.objects.create(record=record, kind=JobAction.Kind.RETRY, actor=user, detail=f"as {retried.task_id}")
    return retried


def job_cancel(*, result: TaskResult, user: AbstractBaseUser) -> None:
    """Cancel a job: a queued one never starts, a running one is stopped (SIGTERM), and it ends REVOKED."""
    if result.status in states.READY_STATES:
        raise JobNotCancellable(f"Job {result.task_id} already ended ({result.status}); there is nothing to cancel.")
    running = result.status not in (states.PENDING, states.RECEIVED)
    now = timezone.now()
    with transaction.atomic():
        JobRecord.objects.filter(pk=result.pk).update(cancelled_by=user, cancelled_at=now)
        TaskResult.objects.filter(pk=result.pk).update(
            status=states.REVOKED, date_done=now,
            result=revoked_result(f"cancelled by {user}"),
        )
        JobAction.objects.create(
            record_id=result.pk, kind=JobAction.Kind.CANCEL, actor=user,
            detail="stopped while running" if running else "dequeued",
        )
        workflow_steps_revoked(task_ids=[result.task_id], why=f"was cancelled by {user}")
    # Workers drop a revoked job when it reaches them and stop it if it runs; a worker that was
    # not listening still skips it, because the result backend finds its row REVOKED (JobTask).
    current_app.control.revoke(result.task_id, terminate=running, signal="SIGTERM")


STALE_GRACE = timedelta(minutes=5)


def stale_jobs_fail() -> int:
    """Mark FAILURE the jobs still STARTED (or PROGRESS) past their hard time limit: no worker can
    still be running them, so the worker that was is gone without a word. Returns how many."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=current_app.conf.task_time_limit) - STALE_GRACE
    message = ("No worker reported an outcome before the time limit: the worker running it was lost. "
               "Retry it if it is still wanted.")
    return TaskResult.objects.filter(status__in=[states.STARTED, PROGRESS], date_started__lt=cutoff).update(
        status=states.FAILURE, date_done=now,
        result=json.dumps({"exc_type": "WorkerLost", "exc_message": [message]}),
    )
