"""The engine's JSON API: a router to launch jobs, read their state and list the catalog, and the
pieces every API of the site shares (session auth, errors as {"detail", "errors"}). The project's
NinjaAPI (site_config/api.py) mounts the router and installs the error handlers."""
import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from ninja import Body, NinjaAPI, Router, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.utils import check_csrf
from pydantic import ConfigDict, Field

from . import selectors, services
from .catalog import catalog
from .exceptions import (
    InvalidArguments,
    InvalidWorkflow,
    JobForbidden,
    JobLaunchError,
    JobNotCancellable,
    JobNotRetryable,
    JobQueueUnavailable,
    LaunchLimitReached,
)
from .models import JobRecord
from .throttling import JobLaunchThrottle, too_many, workflow_admit


class CsrfFailed(Exception):
    pass


class SignedInSession:
    """The browser's signed-in session; state-changing requests must carry a CSRF token."""

    openapi_type = "apiKey"
    openapi_in = "cookie"
    openapi_name = "sessionid"
    csrf = True  # tells /api/docs to send the CSRF token, so a signed-in person can try POSTs there

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise CsrfFailed
        return request.user


class ErrorOut(Schema):
    detail: str = Field(description="What went wrong, and what to do about it.")
    errors: list[dict[str, str]] = Field(default=[], description="One entry per problem: field and message.")


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """A route's error answers, for its schema: every route may answer 400 (malformed JSON, a NUL
    character in the query) and 401, besides those it names."""
    return dict.fromkeys((400, 401, *statuses), ErrorOut)


def error(request: HttpRequest, status: int, detail: str, errors: list[dict[str, str]] = ()) -> HttpResponse:
    """An error answer in the API's one shape."""
    return HttpResponse(
        ErrorOut(detail=detail, errors=list(errors)).model_dump_json(), status=status, content_type="application/json"
    )


def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    """429 with Retry-After, for a launch over JOBS_LAUNCH_RATE."""
    wait = math.ceil(exc.wait or 1)
    response = error(request, 429, too_many(wait))
    response["Retry-After"] = str(wait)
    return response


# Why a launch failed -> the HTTP status that says so. The one place launch errors meet HTTP.
LAUNCH_ERROR_STATUS = {JobForbidden: 403, JobNotRetryable: 409, LaunchLimitReached: 429, JobQueueUnavailable: 503}


def launch_error(request: HttpRequest, exc: JobLaunchError) -> HttpResponse:
    """The answer to a JobLaunchError: 403 forbidden, 409 not retryable now, 429 over a limit, 503 queue
    down, 422 for the rest."""
    status = next((code for kind, code in LAUNCH_ERROR_STATUS.items() if isinstance(exc, kind)), 422)
    if isinstance(exc, InvalidArguments | InvalidWorkflow):
        problems = exc.errors
    elif isinstance(exc, JobQueueUnavailable | LaunchLimitReached | JobNotRetryable):
        problems = []
    else:  # the job's name: unknown, or not this user's to launch
        problems = [{"field": "task", "message": str(exc)}]
    response = error(request, status, f"{exc} Try again shortly." if status == 503 else str(exc), problems)
    if getattr(exc, "wait", None):
        response["Retry-After"] = str(exc.wait)
    return response


def install_error_handlers(api: NinjaAPI) -> None:
    """Make `api` answer every error as {"detail", "errors"} with the right status."""

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request, exc):
        return error(request, 401, "Authentication required: send 'Authorization: Bearer <token>' or sign in.")

    @api.exception_handler(CsrfFailed)
    def csrf_failed(request, exc):
        return error(request, 403, "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header.")

    @api.exception_handler(RequestDataTooBig)
    def too_large(request, exc):
        return error(request, 413, f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                     "bytes (DJANGO_MAX_REQUEST_BYTES). Pass large data by reference, not as job arguments.")

    @api.exception_handler(MultiPartParserError)
    def unreadable_form(request, exc):
        return error(request, 400, f"The request body is not a multipart form Django can read ({exc}). Send files "
                     "as multipart/form-data fields, as curl -F 'file=@data.csv' does.")

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        if exc.status_code == 400 and exc.__cause__ is not None:  # the body did not parse
            return error(request, 400, f"The request body is not valid JSON: {exc.__cause__}.")
        return error(request, exc.status_code, exc.message)

    @api.exception_handler(NinjaValidationError)
    def invalid_request(request, exc):
        problems = [
            {
                "field": ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "payload")),
                "message": problem.get("msg", "invalid"),
            }
            for problem in exc.errors
        ]
        return error(request, 422, "The request does not have the expected shape: "
                     '{"task": "<job name>", "args": [...], "kwargs": {...}}.', problems)

    api.exception_handler(JobLaunchError)(launch_error)
    api.exception_handler(Throttled)(throttled)


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
    waiting: str | None = Field(description="For a queued job: why no worker may take it (its queue paused, or no worker "
                                            "consuming it); null when one will in its turn.")
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


@router.post("/", response={202: JobOut, **errors(403, 413, 422, 429, 503)}, url_name="job_create",
             throttle=[JobLaunchThrottle()])
def job_create(request, payload: JobIn, response: HttpResponse):
    """Launch a job from the catalog; it is enqueued once recorded, and runs on a worker."""
    result = services.job_launch(
        name=payload.task, args=payload.args, kwargs=payload.kwargs,
        launched_by=request.user, origin=JobRecord.Origin.API,
    )
    body = job_out(request, result)
    response["Location"] = body["url"]
    return 202, body


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
    if not selectors.may_act_on(request.user, result, permission):
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


workflow_router = Router(tags=["workflows"])


class StepOut(Schema):
    id: int
    position: int = Field(description="Its place in the spec, from 0.")
    path: str = Field(description="Where it is in the spec, e.g. chord.header[3].")
    job: str
    job_id: str = Field(description="Its job's id (the latest attempt): GET /api/jobs/<id>/.")
    status: str
    parents: list[int | str] = Field(description="The steps it follows ('more-N': steps not listed, of layer N).")


class WorkflowOut(Schema):
    id: str
    name: str = Field(description="The declared workflow's name, or the one code gave it; empty for one launched as a spec.")
    state: str = Field(description="RUNNING, SUCCESS, FAILURE or REVOKED.")
    url: str
    page: str = Field(description="Its page, with the live graph.")
    steps_total: int
    steps_done: int
    counts: dict[str, int] = Field(description="Its steps by their jobs' states.")
    result: Any = Field(description="The last step's result (a list when several end it), once it succeeded.")
    error: str = Field(description="Which step failed, and why.")
    launched_by: str | None
    origin: str
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepOut] = Field(description="Its steps, the first 20 of each layer of the graph.")


def workflow_out(request: HttpRequest, flow) -> dict[str, Any]:
    return {**selectors.workflow_details(flow),
            "url": request.build_absolute_uri(reverse("api:workflow_detail", args=[flow.id])),
            "page": request.build_absolute_uri(reverse("jobs:workflow", args=[flow.id]))}


WORKFLOW_BODY = """A spec: {"chain": [nodes]}, {"group": [nodes]}, {"chord": {"header": [nodes], "body": node}} or a
step {"job": "<name>", "kwargs": {...}, "input": "<parameter given the previous result>"}; or a declared
workflow: {"workflow": "<name>", "kwargs": {...}}."""


@workflow_router.post("/", response={201: WorkflowOut, **errors(403, 413, 422, 429, 503)}, url_name="workflow_create",
                      throttle=[JobLaunchThrottle()], openapi_extra={"requestBody": {"description": WORKFLOW_BODY,
                      "content": {"application/json": {"schema": {"type": "object"}}}}})
def workflow_create(request, payload: Body[dict[str, Any]], response: HttpResponse):
    """Launch a workflow: every step is checked and recorded PENDING before this answers."""
    if "workflow" in payload:
        extra = sorted(set(payload) - {"workflow", "kwargs"})
        if extra or not isinstance(payload["workflow"], str) or not isinstance(payload.get("kwargs", {}), dict):
            raise InvalidWorkflow([{"field": "workflow", "message": 'a declared workflow is launched as {"workflow": '
                                    '"<name>", "kwargs": {...}}' + (f"; unexpected: {', '.join(extra)}" if extra else "")}])
        flow = services.workflow_launch_declared(name=payload["workflow"], kwargs=payload.get("kwargs", {}),
                                                 launched_by=request.user, origin=JobRecord.Origin.API,
                                                 admit=workflow_admit(request))
    else:
        flow = services.workflow_launch(spec=payload, launched_by=request.user, origin=JobRecord.Origin.API,
                                        admit=workflow_admit(request))
    body = workflow_out(request, flow)
    response["Location"] = body["url"]
    return 201, body


@workflow_router.get("/{workflow_id}/", response={200: WorkflowOut, **errors(404)}, url_name="workflow_detail")
def workflow_detail(request, workflow_id: str):
    """A workflow's state, progress by step and result. Only your own, unless staff."""
    flow = selectors.workflow_get(workflow_id=workflow_id, user=request.user)
    if flow is None:
        return error(request, 404, f"No workflow with id {workflow_id!r}.")
    return workflow_out(request, flow)


@workflow_router.post("/{workflow_id}/cancel/", response={200: WorkflowOut, **errors(403, 404, 409)},
                      url_name="workflow_cancel")
def workflow_cancel(request, workflow_id: str):
    """Cancel a workflow: queued steps never start, running ones stop. Your own, or with 'Can cancel jobs'."""
    flow = selectors.workflow_get(workflow_id=workflow_id, user=request.user)
    if flow is None:
        return error(request, 404, f"No workflow with id {workflow_id!r}.")
    if not selectors.may_act_on_workflow(request.user, flow, "jobs.cancel_job"):
        return error(request, 403, "Only whoever launched a workflow, or someone with 'Can cancel jobs', may cancel it.")
    try:
        services.workflow_cancel(workflow=flow, user=request.user)
    except JobNotCancellable as exc:
        return error(request, 409, str(exc))
    flow.refresh_from_db()
    return workflow_out(request, flow)
