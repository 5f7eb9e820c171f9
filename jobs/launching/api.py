"""The jobs router of the JSON API: launch a job, read its state, list jobs and the catalog, retry
and cancel. The project's NinjaAPI (site_config/api.py) mounts it, with the shared auth and errors
of jobs/http.py."""
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from ..catalog import catalog
from ..exceptions import JobNotCancellable
from ..http import error, errors
from ..records.models import JobRecord
from ..records.selectors import may_act_on
from ..throttling import JobLaunchThrottle
from . import selectors, services

router = Router(tags=["jobs"])


class JobIn(Schema):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="A job name from GET /api/jobs/catalog/.")
    args: list[Any] = Field(default=[], description="Positional arguments, in the order the catalog lists them.")
    kwargs: dict[str, Any] = Field(default={}, description="Arguments by name.")


class ProgressOut(Schema):
    current: int | None
    total: int | None
    percent: float | None = Field(description="0-100, or null while unknown.")
    message: str


class DeliveryOut(Schema):
    started_at: datetime
    worker: str | None
    ended: str = Field(description="running, success, failure, revoked; or how an earlier delivery ended "
                                   "(interrupted: its worker lost mid-run; failed, and was retried).")


class JobOut(Schema):
    id: str
    task: str
    status: str = Field(description="PENDING, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE or REVOKED.")
    url: str = Field(description="This job's status URL.")
    result: Any = Field(description="The return value, once the job succeeded.")
    error: str | None = Field(description="The error message, once the job failed or was cancelled.")
    progress: ProgressOut
    arguments: dict[str, Any] | None = Field(description='{"args": [...], "kwargs": {...}} as launched.')
    queue: str | None
    worker: str | None
    launched_by: str | None
    origin: str | None = Field(description="api, page, schedule, retry or code.")
    periodic_task: str | None
    attempt: int = Field(description="How many times it was run: Celery's retries and redeliveries (a worker lost "
                                     "mid-run) count.")
    deliveries: list[DeliveryOut] = Field(description="Each time a worker started it, oldest first.")
    waiting: str | None = Field(description="For a job not started: why no worker may take it (waiting on its limit, "
                                            "with how long; its queue paused; no worker consuming it); null when one "
                                            "will in its turn.")
    last_error: str
    retry_of: str | None
    retried_as: list[str]
    workflow: str | None = Field(description="The workflow this job is a step of.")
    created_at: datetime
    started_at: datetime | None
    done_at: datetime | None


class JobPageOut(Schema):
    items: list[JobOut]
    next: str | None = Field(description="The next page's URL, or null on the last page.")


class CatalogEntryOut(Schema):
    name: str
    description: str
    arguments: dict[str, Any] = Field(description="JSON Schema of the job's arguments.")


def job_out(request: HttpRequest, result) -> dict[str, Any]:
    url = request.build_absolute_uri(reverse("api:job_detail", args=[result.task_id]))
    return {**selectors.job_details(result), "url": url}


@router.post("/", response={202: JobOut, 200: JobOut, **errors(403, 413, 422, 429, 503)}, url_name="job_create",
             throttle=[JobLaunchThrottle()])
def job_create(request, payload: JobIn, response: HttpResponse):
    """Launch a job from the catalog; it is enqueued once recorded, and runs on a worker: 202. A unique
    job whose key an identical job holds (queued, running, or within its period) is not launched
    again: 200 with the job that holds it."""
    result = services.job_launch(
        name=payload.task, args=payload.args, kwargs=payload.kwargs,
        launched_by=request.user, origin=JobRecord.Origin.API,
    )
    body = job_out(request, result)
    response["Location"] = body["url"]
    return (202 if result.launched else 200), body


@router.get("/catalog/", response={200: list[CatalogEntryOut], **errors()}, url_name="job_catalog")
def job_catalog(request):
    """The jobs you may launch, with the JSON Schema of their arguments."""
    return [
        {
            "name": name,
            "description": task.description,
            "arguments": task.arguments_model.model_json_schema(),
        }
        for name, task in catalog(request.user).items()
    ]


@router.get("/", response={200: JobPageOut, **errors(422)}, url_name="job_list")
def job_list(request, status: str | None = None, task: str | None = None, page: int = 1):
    """Your jobs (staff: everyone's), newest first, 50 a page, filtered by status and job name."""
    try:
        rows, has_next = selectors.jobs_page(user=request.user, status=status or "", task=task or "", page=page)
    except selectors.InvalidFilter as exc:
        return error(request, 422, str(exc))
    next_url = None
    if has_next:
        query = request.GET.copy()
        query["page"] = page + 1
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"items": [job_out(request, result) for result in rows], "next": next_url}


@router.get("/{job_id}/", response={200: JobOut, **errors(404)}, url_name="job_detail")
def job_detail(request, job_id: str):
    """A job's state, progress, result or error, timings and history. Only your own, unless staff."""
    result = selectors.job_get(job_id=job_id, user=request.user)
    if result is None:
        return error(request, 404, f"No job with id {job_id!r}.")
    return job_out(request, result)


def job_to_act_on(request: HttpRequest, job_id: str, permission: str, verb: str):
    """The job `job_id` if the user may `verb` it (their own, or any with `permission`), else the 404 or 403 answer."""
    result = selectors.job_get(job_id=job_id, user=request.user)
    if result is None:
        return None, error(request, 404, f"No job with id {job_id!r}.")
    if not may_act_on(request.user, result, permission):
        return None, error(request, 403, f"Only whoever launched a job, or someone with 'Can {verb} jobs', may {verb} it.")
    return result, None


@router.post("/{job_id}/retry/", response={202: JobOut, **errors(403, 404, 409, 422, 429, 503)}, url_name="job_retry",
             throttle=[JobLaunchThrottle()])
def job_retry(request, job_id: str, response: HttpResponse):
    """Launch the job again with the same arguments (a workflow's failed step: in its place, so the
    workflow goes on). Your own jobs, or with 'Can retry jobs'. Answers with the new job; 409 for a job not
    finished (a retry would run it twice: cancel it first) or a step its workflow does not wait for."""
    result, refused = job_to_act_on(request, job_id, "jobs.retry_job", "retry")
    if refused:
        return refused
    body = job_out(request, services.job_retry(result=result, user=request.user))
    response["Location"] = body["url"]
    return 202, body


@router.post("/{job_id}/cancel/", response={200: JobOut, **errors(403, 404, 409)}, url_name="job_cancel")
def job_cancel(request, job_id: str):
    """Cancel a job: queued, it never starts; running, it is stopped. Your own, or with 'Can cancel jobs'."""
    result, refused = job_to_act_on(request, job_id, "jobs.cancel_job", "cancel")
    if refused:
        return refused
    try:
        services.job_cancel(result=result, user=request.user)
    except JobNotCancellable as exc:
        return error(request, 409, str(exc))
    return job_out(request, selectors.job_get(job_id=job_id, user=request.user))


