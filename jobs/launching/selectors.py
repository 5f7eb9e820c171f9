"""Reads of the jobs pages, the API and the results admin: a page of jobs, one job with all its
details (its deliveries, why it waits), whether it may be retried, search."""
import re
from typing import Any

from celery import states
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django_celery_results.models import TaskResult

from ..limits.selectors import limit_waiting_reason
from ..queues.selectors import job_waiting_reason
from ..records.models import JobRecord
from ..records.selectors import STATES, is_uuid, job_outcome, job_progress, jobs_visible_to
from ..workflows.models import Workflow, WorkflowStep

PAGE_SIZE = 50
MAX_PAGE = 10_000  # 500,000 jobs deep; past that, a filter finds a job sooner than paging


class InvalidFilter(ValueError):
    """A list filter that cannot match: the message says which and why."""


def jobs_page(*, user: AbstractBaseUser, status: str = "", task: str = "", workflow: str = "",
              page: int = 1) -> tuple[list[TaskResult], bool]:
    """One page of the jobs `user` may see, filtered, and whether another page follows; InvalidFilter
    for an unknown status or a page out of range.

    One row more than a page tells whether there is a next page, without counting every job.
    """
    if status and status not in STATES:
        raise InvalidFilter(f"Unknown status {status!r}. Use one of: {', '.join(STATES)}.")
    if not 1 <= page <= MAX_PAGE:
        raise InvalidFilter(f"page must be between 1 and {MAX_PAGE:,}; filter by status or job to go further back.")
    jobs = jobs_visible_to(user=user)
    if status:
        jobs = jobs.filter(status=status)
    if task:
        jobs = jobs.filter(task_name=task)
    if workflow:
        if not is_uuid(workflow):
            raise InvalidFilter(f"Unknown workflow {workflow!r}: a workflow's id is a UUID, as its page shows it.")
        jobs = jobs.filter(record__step__workflow_id=workflow)
    rows = list(jobs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def job_get(*, job_id: str, user: AbstractBaseUser) -> TaskResult | None:
    """The job with id `job_id` if `user` may see it, else None (also for ids that are not UUIDs)."""
    if not is_uuid(job_id):
        return None
    return jobs_visible_to(user=user).filter(task_id=job_id).first()


def job_retry_refusal(result: TaskResult) -> str | None:
    """Why `result` may not be retried now (None: it may): a job not finished would run twice, and
    a workflow step is retried only as the last attempt of a failed step of a failed workflow."""
    if result.status not in states.READY_STATES:
        return (f"Job {result.task_id} is {result.status}, not finished: a retry would run it a second time "
                "beside it. Cancel it first, or wait for it to end.")
    record = getattr(result, "record", None)
    if record is None or not record.step_id:
        return None
    step = WorkflowStep.objects.select_related("workflow").get(pk=record.step_id)
    if step.task_id != result.task_id:
        return f"Job {result.task_id} is an earlier attempt of its workflow step; retry its latest, {step.task_id}."
    if step.sending_at is None:
        return (f"Step {step.path} never ran: its workflow failed before it was due. Retry the failed step it waits "
                "for, and it runs in its turn.")
    if result.status == states.SUCCESS or step.workflow.state != Workflow.State.FAILURE:
        return (f"Only a failed or cancelled step of a failed workflow is retried; workflow {step.workflow_id} is "
                f"{step.workflow.get_state_display().lower()} and this step {result.status}.")
    return None


def job_waiting(result: TaskResult, record) -> str | None:
    """Why a job that has not started waits: its limit, its queue paused, or no worker for its queue."""
    if getattr(result, "limit_waiting_since", None) is not None:
        return limit_waiting_reason(result.task_name, result.limit_key, result.limit_waiting_since)
    return job_waiting_reason(record.queue) if result.status == states.PENDING and record else None


def job_details(result: TaskResult) -> dict[str, Any]:
    """Everything the API and the pages show about one job (a row of jobs_with_details())."""
    value, error = job_outcome(result)
    record = getattr(result, "record", None)
    deliveries = [*(record.deliveries if record else [])]
    if result.date_started is not None:  # the latest delivery, as the row says it now
        deliveries.append({"started_at": result.date_started.isoformat(), "worker": result.worker,
                           "ended": result.status.lower() if result.status in states.READY_STATES else "running"})
    return {
        "id": result.task_id,
        "task": result.task_name,
        "status": result.status,
        "result": value,
        "error": error,
        "progress": job_progress(result),
        "arguments": record.arguments if record else None,
        "queue": record.queue if record else None,
        "worker": result.worker,
        "launched_by": record.launched_by.get_username() if record and record.launched_by else None,
        "origin": record.origin if record else None,
        "periodic_task": result.periodic_task_name,
        "attempt": max(record.attempts if record else 1, len(deliveries)),
        "deliveries": deliveries,
        "waiting": job_waiting(result, record),
        "last_error": record.last_error if record else "",
        "retry_of": record.retry_of.result.task_id if record and record.retry_of else None,
        "retried_as": result.retried_as_ids or [],
        "workflow": record.step.workflow_id if record and record.step else None,
        "created_at": result.date_created,
        "started_at": result.date_started,
        "done_at": result.date_done if result.status in states.READY_STATES else None,
    }


# Text searches return at most this many jobs from each place they look (arguments, errors).
SEARCH_LIMIT = 1000
_ID_PREFIX = re.compile(r"[0-9a-f]{4}[0-9a-f-]{0,32}")


def jobs_search(queryset: QuerySet[TaskResult], term: str) -> QuerySet[TaskResult]:
    """The jobs of `queryset` matching what an operator pastes, each way through an index: a job id
    or its first characters; a job name, exactly; otherwise text (3 characters or more, any case)
    in the job's arguments or, for failed jobs, in its error (trigram indexes: migration 0015)."""
    if not term:
        return queryset
    if _ID_PREFIX.fullmatch(term.lower()):
        return queryset.filter(task_id__startswith=term.lower())
    if " " not in term and queryset.filter(task_name=term).exists():
        return queryset.filter(task_name=term)
    if len(term) < 3:
        return queryset.none()
    in_arguments = JobRecord.objects.annotate(text=Cast("arguments", TextField())).filter(text__icontains=term)
    in_errors = TaskResult.objects.filter(status=states.FAILURE, result__icontains=term)
    # Each found through its own index, then joined by id: an OR across the two tables would scan.
    ids = [*in_arguments.order_by().values_list("pk", flat=True)[:SEARCH_LIMIT],
           *in_errors.order_by().values_list("pk", flat=True)[:SEARCH_LIMIT]]
    return queryset.filter(pk__in=ids)


