"""The jobs workers run: each takes primitive arguments, calls one service, and owns its retries.
Names are explicit and stable: django-celery-beat stores them as text. Queues: CELERY_TASK_ROUTES."""
import time
from smtplib import SMTPRecipientsRefused
from typing import Annotated

from celery import shared_task
from pydantic import Field, HttpUrl

from . import contacts, fetch, reports, services, signup
from .catalog import job


@job("jobs.add")
def add(x: int, y: int) -> int:
    """Add two integers (the seeds' first task)."""
    return x + y


@job("jobs.say_hello")
def say_hello(name: str) -> str:
    """Greet someone by name (the seeds' second task)."""
    return f"Hello, {name}!"


@job("jobs.countdown", bind=True)
def countdown(self, seconds: Annotated[int, Field(ge=1, le=600)]) -> str:
    """Count down one second at a time, reporting progress (a job to watch run)."""
    for elapsed in range(seconds):
        self.report_progress(elapsed, seconds, f"{seconds - elapsed} s to go")
        time.sleep(1)
    return f"Counted down {seconds} s."


@job("jobs.probe", staff_only=True)
def probe(key: str, seconds: Annotated[float, Field(ge=0, le=60)] = 0) -> str:
    """Wait, then record `key` once: an end-to-end check of the pipeline (the fault suite counts these)."""
    time.sleep(seconds)
    services.probe_record(key=key)
    return key


@job(
    "jobs.send_activation_email",
    staff_only=True,
    # Network and SMTP errors (smtplib's are OSErrors) are retried with exponential backoff and
    # jitter, five times at most; an address the server refuses is not (best practice 4).
    autoretry_for=(OSError,),
    dont_autoretry_for=(SMTPRecipientsRefused,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    # Nothing to keep when it works; a failure is kept (best practice 6).
    ignore_result=True,
    store_errors_even_if_ignored=True,
)
def send_activation_email(user_id: int) -> None:
    """Send a new account its activation link, once."""
    signup.activation_email_send(user_id=user_id)


@job("jobs.import_contacts", bind=True, staff_only=True)
def import_contacts(self, import_id: int) -> dict[str, int]:
    """Import an uploaded CSV of contacts, reporting progress; invalid rows are recorded."""
    return contacts.contact_import_run(import_id=import_id, report_progress=self.report_progress)


@job("jobs.build_report", staff_only=True)
def build_report(days: Annotated[int, Field(ge=1, le=366)] = 7) -> dict[str, object]:
    """Build a CSV report of the jobs per day and status (the seeds' weekly report)."""
    report = reports.report_build(days=days)
    return {"report_id": report.pk, "download_url": f"/reports/{report.pk}/"}


@job(
    "jobs.fetch_url",
    staff_only=True,  # a URL of anyone's choosing, fetched from inside the network
    autoretry_for=(fetch.FetchTemporaryError,),
    retry_backoff=1,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=4,
)
def fetch_url(url: HttpUrl) -> dict[str, object]:
    """Fetch a page and summarize it (status, size, title); timeouts and 5xx are retried, 4xx not."""
    return fetch.url_summarize(url=str(url))


@shared_task(name="jobs.stale_jobs_fail")
def stale_jobs_fail() -> int:
    """Maintenance, every 5 minutes: jobs whose worker was lost mid-run do not stay STARTED."""
    return services.jobs_stale_fail()
