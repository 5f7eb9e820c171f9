"""The contacts' API router: upload a CSV to import (mounted at /api/imports/)."""
from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from ninja import File, Router, Schema, UploadedFile
from pydantic import Field

from jobs.http import error, errors
from jobs.models import JobRecord
from jobs.throttling import JobLaunchThrottle

from . import selectors, services
from .uploads import upload_refused

router = Router(tags=["imports"])


class ImportOut(Schema):
    id: int
    rows: int = Field(description="Data rows found in the file.")
    workflow: str = Field(description="The import's status URL: its chunks side by side, then their summary.")
    job: str = Field(description="The status URL of the job that ends the import (the summary step).")
    errors: str = Field(description="Where the refused rows can be downloaded once the job is done.")


@router.post("/", response={202: ImportOut, **errors(403, 413, 422, 429, 503)}, url_name="import_create",
             throttle=[JobLaunchThrottle()])  # counted before the body is read
def import_create(request, response: HttpResponse, file: UploadedFile = File(None)):  # noqa: B008 (ninja's way)
    """Upload a CSV of contacts (columns email, name, phone); chunk jobs on the long queue import it side by side."""
    if refused := upload_refused(request):
        return error(request, 413, refused)
    if file is None:
        return error(request, 422, "Send the CSV file as the multipart form field 'file'.",
                     [{"field": "file", "message": "Field required"}])
    try:
        contact_import = services.contact_import_create(upload=file, user=request.user, origin=JobRecord.Origin.API)
    except services.ImportRefused as exc:
        return error(request, 413 if file.size > settings.IMPORT_MAX_BYTES else 422, str(exc))
    workflow_url = request.build_absolute_uri(reverse("api:workflow_detail", args=[contact_import.workflow_id]))
    job_id = selectors.import_summary_job_id(contact_import=contact_import)
    response["Location"] = workflow_url
    return 202, {
        "id": contact_import.pk, "rows": contact_import.rows, "workflow": workflow_url,
        "job": request.build_absolute_uri(reverse("api:job_detail", args=[job_id])),
        "errors": request.build_absolute_uri(reverse("contacts:import_errors", args=[contact_import.pk])),
    }
