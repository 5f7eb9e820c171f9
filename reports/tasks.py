"""The report job. Its name is stable: django-celery-beat and old results store it as text."""
from datetime import timedelta
from typing import Annotated

from django.urls import reverse
from django.utils import timezone
from pydantic import Field

from jobs.catalog import Unique, job

from . import services


def report_day(days: int) -> str:
    """A report's key: its span and the day it is asked for (the site's time zone)."""
    return f"{days} days to {timezone.localdate()}"


# One report a day for each span, however many times it is asked for (the page, the API, beat).
@job("jobs.build_report", restricted=True, unique=Unique(on=report_day, until=timedelta(days=1)))
def build_report(days: Annotated[int, Field(ge=1, le=366)] = 7) -> dict[str, object]:
    """Build a CSV report of the jobs per day and status (the seeds' weekly report)."""
    report = services.report_build(days=days)
    return {"report_id": report.pk, "download_url": reverse("reports:download", args=[report.pk])}
