"""The JSON API: launch jobs, read their state, list the catalog. OpenAPI docs at /api/docs."""
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import File, NinjaAPI, Schema, UploadedFile
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from ninja.utils import check_csrf
from pydantic import ConfigDict, Field

from . import contacts, selectors, services
from .catalog import InvalidArguments, UnknownJob, catalog, find_job
from .models import JobRecord
from .throttling import launch_wait, too_many


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`, for scripts; tokens come from `manage.py token_create`."""

    def authenticate(self, request, token):
        user = services.api_token_authenticate(key=token)
        if user is not None:
            request.user = user
        return user


class SignedInSession:
    """The browser's signed-in session; state-changing requests must carry a CSRF token."""

    openapi_type = "apiKey"
    openapi_in = "cookie"
    openapi_name = "sessionid"

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise CsrfFailed
        return request.user


class CsrfFailed(Exception):
    pass


api = NinjaAPI(title="Jobs API", version="1", urls_namespace="api", auth=[BearerToken(), SignedInSession()])


class ErrorOut(Schema):
    detail: str = Field(description="What went wrong, and what to do about it.")
    errors: list[dict[str, str]] = Field(default=[], description="One entry per problem: field and message.")


def error(request: HttpRequest, status: int, detail: str, errors: list[dict[str, str]] = ()) -> HttpResponse:
    return api.create_response(request, {"detail": detail, "errors": list(errors)}, status=status)


def throttled(request: HttpRequest, wait: int) -> HttpResponse:
    response = error(request, 429, too_many(wait))
    response["Retry-After"] = str(wait)
    return response


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    return error(request, 401, "Authentication required: send 'Authorization: Bearer <token>' or sign in.")


@api.exception_handler(CsrfFailed)
def csrf_failed(request, exc):
    return error(request, 403, "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header.")


@api.exception_handler(RequestDataTooBig)
def too_large(request, exc):
    return error(request, 413, f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
                 "(DJANGO_MAX_REQUEST_BYTES). Pass large data by reference, not as job arguments.")


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
    attempt: int
    last_error: str
    retry_of: str | None
    retried_as: list[str]
    created_at: datetime
    started_at: datetime | None
    done_at: datetime | None


class JobPageOut(Schema):
    items: list[JobOut]
    next: str | None = Field(description="The next page's URL, or null on the last page.")


class ImportOut(Schema):
    id: int
    rows: int = Field(description="Data rows found in the file.")
    job: str = Field(description="The import job's status URL.")
    errors: str = Field(description="Where the refused rows can be downloaded once the job is done.")


class CatalogEntryOut(Schema):
    name: str
    description: str
    arguments: dict[str, Any] = Field(description="JSON Schema of the job's arguments.")


def job_out(request: HttpRequest, record) -> dict[str, Any]:
    url = request.build_absolute_uri(reverse("api:job_detail", args=[record.task_id]))
    return {**selectors.job_details(record), "url": url}


@api.post("/jobs/", response={202: JobOut, 403: ErrorOut, 422: ErrorOut, 429: ErrorOut, 503: ErrorOut},
          url_name="job_create")
def job_create(request, payload: JobIn, response: HttpResponse):
    """Launch a job from the catalog; it is enqueued once recorded, and runs on a worker."""
    if (wait := launch_wait(request)) is not None:
        return throttled(request, wait)
    try:
        find_job(payload.task, user=request.user)
        record = services.job_launch(
            name=payload.task, args=payload.args, kwargs=payload.kwargs,
            launched_by=request.user, origin=JobRecord.Origin.API,
        )
    except UnknownJob as exc:
        return error(request, 403 if exc.forbidden else 422, str(exc), [{"field": "task", "message": str(exc)}])
    except InvalidArguments as exc:
        return error(request, 422, str(exc), exc.errors)
    except services.JobQueueUnavailable as exc:
        return error(request, 503, f"{exc} Try again shortly.")
    body = job_out(request, selectors.job_get(job_id=record.task_id, user=request.user))
    response["Location"] = body["url"]
    return 202, body


@api.get("/jobs/catalog/", response=list[CatalogEntryOut], url_name="job_catalog")
def job_catalog(request):
    """The jobs you may launch, with the JSON Schema of their arguments."""
    return [
        {
            "name": name,
            "description": job.description,
            "arguments": job.arguments_model.model_json_schema(),
        }
        for name, job in catalog(request.user).items()
    ]


@api.get("/jobs/", response={200: JobPageOut, 422: ErrorOut}, url_name="job_list")
def job_list(request, status: str | None = None, task: str | None = None, page: int = 1):
    """Your jobs (staff: everyone's), newest first, 50 a page, filtered by status and job name."""
    if status is not None and status not in selectors.STATES:
        return error(request, 422, f"Unknown status {status!r}. Use one of: {', '.join(selectors.STATES)}.")
    if page < 1:
        return error(request, 422, "page starts at 1.")
    rows, has_next = selectors.jobs_page(user=request.user, status=status or "", task=task or "", page=page)
    next_url = None
    if has_next:
        query = request.GET.copy()
        query["page"] = page + 1
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"items": [job_out(request, record) for record in rows], "next": next_url}


@api.get("/jobs/{job_id}/", response={200: JobOut, 404: ErrorOut}, url_name="job_detail")
def job_detail(request, job_id: str):
    """A job's state, progress, result or error, timings and history. Only your own, unless staff."""
    record = selectors.job_get(job_id=job_id, user=request.user)
    if record is None:
        return error(request, 404, f"No job with id {job_id!r}.")
    return job_out(request, record)


@api.post("/imports/", response={202: ImportOut, 413: ErrorOut, 422: ErrorOut, 429: ErrorOut, 503: ErrorOut},
          url_name="import_create")
def import_create(request, response: HttpResponse, file: UploadedFile = File(...)):  # noqa: B008 (ninja's way)
    """Upload a CSV of contacts (columns email, name, phone); a job on the long queue imports it."""
    if (wait := launch_wait(request)) is not None:
        return throttled(request, wait)
    try:
        contact_import = contacts.contact_import_create(upload=file, user=request.user, origin=JobRecord.Origin.API)
    except contacts.ImportRefused as exc:
        return error(request, 413 if file.size > settings.IMPORT_MAX_BYTES else 422, str(exc))
    except services.JobQueueUnavailable as exc:
        return error(request, 503, f"{exc} Try again shortly.")
    job_url = request.build_absolute_uri(reverse("api:job_detail", args=[contact_import.task_id]))
    response["Location"] = job_url
    return 202, {
        "id": contact_import.pk, "rows": contact_import.rows, "job": job_url,
        "errors": request.build_absolute_uri(reverse("import_errors", args=[contact_import.pk])),
    }
