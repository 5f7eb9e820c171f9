"""What every endpoint of the engine shares: session auth, and errors as {"detail", "errors"}."""
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.utils import check_csrf
from pydantic import Field

from .exceptions import (
    InvalidArguments,
    InvalidWorkflow,
    JobForbidden,
    JobLaunchError,
    JobNotRetryable,
    JobQueueUnavailable,
    LaunchLimitReached,
)
from .throttling import too_many


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
