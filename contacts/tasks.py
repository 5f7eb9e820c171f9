"""The contacts' job. Its name is stable: django-celery-beat and old results store it as text."""
from jobs.catalog import job

from . import services


@job("jobs.import_contacts", bind=True, restricted=True)
def import_contacts(self, import_id: int) -> dict[str, int]:
    """Import an uploaded CSV of contacts, reporting progress; invalid rows are recorded."""
    return services.contact_import_run(import_id=import_id, report_progress=self.report_progress)
