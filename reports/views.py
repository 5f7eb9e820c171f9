"""The report download."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404

from .models import Report


@login_required
def report_download(request, report_id: int):
    """A generated report (it covers everyone's jobs: the admin's view permission on reports)."""
    if not request.user.has_perm("reports.view_report"):
        raise PermissionDenied
    report = get_object_or_404(Report, pk=report_id)
    return FileResponse(report.file.open("rb"), as_attachment=True, filename=report.file.name.rsplit("/", 1)[-1])
