"""The report download."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404

from .models import Report


@login_required
def report_download(request, report_id: int):
    """A generated report (staff only: it covers everyone's jobs)."""
    if not request.user.is_staff:
        raise PermissionDenied
    report = get_object_or_404(Report, pk=report_id)
    return FileResponse(report.file.open("rb"), as_attachment=True, filename=report.file.name.rsplit("/", 1)[-1])
