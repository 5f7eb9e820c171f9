"""The contacts' jobs. Their names are stable: django-celery-beat and old results store them as text."""
from django.conf import settings

from jobs.catalog import Limit, job

from . import services
from .models import ContactImport


def uploader(import_id: int, **_) -> str:
    """Who uploaded the import: the key of its chunks' limit."""
    return str(ContactImport.objects.filter(pk=import_id).values_list("uploaded_by_id", flat=True).first())


# One person's chunks run at most IMPORT_CHUNKS_PER_OWNER at once, across every worker: a huge file waits
# its turn instead of taking every `long` worker from the others' imports and reports.
@job("jobs.import_contacts_chunk", restricted=True,
     limit=Limit(concurrency=settings.IMPORT_CHUNKS_PER_OWNER, on=uploader))
def import_contacts_chunk(import_id: int, start: int, end: int, line: int) -> dict[str, int]:
    """Import one chunk of an uploaded CSV (bytes `start` to `end`, from line `line`): the map step."""
    return services.contact_import_chunk(import_id=import_id, start=start, end=end, line=line)


@job("jobs.import_contacts_summary", restricted=True)
def import_contacts_summary(import_id: int, chunks: list[dict[str, int]]) -> dict[str, int]:
    """Add up what an import's chunks did (rows, imported, invalid): the reduce step."""
    return services.contact_import_summarize(import_id=import_id, chunks=chunks)


@job("jobs.import_contacts", bind=True, restricted=True)
def import_contacts(self, import_id: int) -> dict[str, int]:
    """Import an uploaded CSV of contacts in one job, reporting progress; invalid rows are recorded."""
    return services.contact_import_run(import_id=import_id, report_progress=self.report_progress)
