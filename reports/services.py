"""Report files built from the job history and the imported data."""
import io

from django.core.files.base import ContentFile
from django.utils import timezone

from contacts.models import Contact
from jobs.spreadsheets import SafeWriter
from jobs.stats import selectors

from .models import Report


def report_build(*, days: int) -> Report:
    """A CSV report: jobs per day and status over the last `days` days, and the contacts held."""
    counts = selectors.job_counts_by_day(days=days)
    statuses = sorted({status for day in counts.values() for status in day})
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow([f"Jobs per day and status, last {days} days"])
    writer.writerow(["day", *statuses, "total"])
    for day, by_status in sorted(counts.items()):
        writer.writerow([day, *(by_status.get(status, 0) for status in statuses), sum(by_status.values())])
    writer.writerow([])
    writer.writerow(["contacts", Contact.objects.count()])
    report = Report(days=days)
    report.file.save(f"report-{timezone.now():%Y%m%d-%H%M%S}.csv", ContentFile(buffer.getvalue().encode()), save=False)
    report.save()
    return report
