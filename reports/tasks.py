"""The report job. Its name is stable: django-celery-beat and old results store it as text."""
from typing import Annotated

from django.urls import reverse
from pydantic import Field

from jobs.catalog import job

from . import services


@job("jobs.build_report", restricted=True)
def build_report(days: Annotated[int, Field(ge=1, le=366)] = 7) -> dict[str, object]:
    """Build a CSV report of the jobs per day and status (the seeds' weekly report)."""
    report = services.report_build(days=days)
    return {"report_id": report.pk, "download_url": reverse("reports:download", args=[report.pk])}
