import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import override_settings
from django_celery_results.models import TaskResult

from contacts import services
from contacts.models import Contact, ContactImport
from jobs.launching.services import job_launch
from jobs.models import Workflow
from jobs.testing.databases import throwaway_database
from jobs.testing.processes import Worker, wait_for


def pool_processes(worker: Worker) -> list[int]:
    """The worker's pool processes (its children)."""
    pid = worker.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def peak_memory_reset(worker: Worker) -> None:
    for pid in pool_processes(worker):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the kernel's peak RSS (VmHWM) starts again from now


def memory(worker: Worker, figure: str) -> int:
    """The largest of the worker's pool processes' `figure` (VmRSS now, VmHWM: peak since the reset), in bytes."""
    return max(int(Path(f"/proc/{pid}/status").read_text().split(f"{figure}:")[1].split()[0]) * 1024
               for pid in pool_processes(worker))


class Command(BaseCommand):
    help = ("Import a generated CSV file (1% invalid rows) on a real worker, in a throwaway database: once as one "
            "job, once as the map-reduce workflow uploads launch (chunks side by side, then their summary); prints "
            "the time from upload to done and the pool processes' peak memory for each. Uses the `long` and "
            "`default` queues: stop `make run`'s workers first.")

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--concurrency", type=int, default=2, help="Worker pool processes (chunks side by side).")
        parser.add_argument("--chunk-rows", type=int, default=None, help="Rows per chunk (default: IMPORT_CHUNK_ROWS).")

    def handle(self, *args, rows, concurrency, chunk_rows, **options):
        if rows < 1 or concurrency < 1 or (chunk_rows is not None and chunk_rows < 1):
            raise CommandError("--rows, --concurrency and --chunk-rows must be at least 1.")
        content = "\n".join(["email,name,phone"] + [
            f"person{n}@example.com,Person {n},+1 555 {n:07d}" if n % 100 else f"broken-{n},Person {n},"
            for n in range(rows)
        ]).encode()
        chunk_rows = chunk_rows or settings.IMPORT_CHUNK_ROWS
        with throwaway_database("import"), tempfile.TemporaryDirectory() as media, \
                override_settings(MEDIA_ROOT=media, IMPORT_MAX_ROWS=rows, IMPORT_MAX_BYTES=len(content),
                                  IMPORT_CHUNK_ROWS=chunk_rows):
            self.user = User.objects.create_user("bench", is_staff=True)
            environment = {"MEDIA_ROOT": media, "IMPORT_CHUNK_ROWS": str(chunk_rows)}
            worker = Worker(concurrency=concurrency, queues="long,default", environment=environment).start()
            try:
                figures = {}
                for name, run in (("one job", self.one_job), ("map-reduce", self.map_reduce)):
                    with connection.cursor() as cursor:
                        cursor.execute(f"TRUNCATE {Contact._meta.db_table}")
                    peak_memory_reset(worker)
                    at_rest = memory(worker, "VmRSS")
                    started = time.perf_counter()
                    contact_import = run(content)
                    figures[name] = (time.perf_counter() - started, at_rest, memory(worker, "VmHWM"))
                    contact_import.refresh_from_db()
                    self.stderr.write(f"{name}: {figures[name][0]:.1f} s, {contact_import.imported:,} imported, "
                                      f"{contact_import.invalid:,} refused, {Contact.objects.count():,} contacts")
            finally:
                worker.stop()
        self.stdout.write(f"\n{rows:,} rows ({len(content) / 1e6:.1f} MB, 1% invalid), a worker with {concurrency} "
                          f"processes, chunks of {chunk_rows:,} rows; from upload to done, and the "
                          "largest resident size of a pool process, before and at its peak")
        for name, (seconds, at_rest, peak) in figures.items():
            self.stdout.write(f"  {name:<12} {seconds:7.1f} s  {rows / seconds:9,.0f} rows/s  "
                              f"{at_rest / 2**20:4.0f} MB before, {peak / 2**20:4.0f} MB at the peak")
        self.stdout.write(f"\nMap-reduce / one job, time: {figures['map-reduce'][0] / figures['one job'][0]:.2f}")

    def one_job(self, content: bytes) -> ContactImport:
        """The file stored and imported by jobs.import_contacts, chunk after chunk in one process."""
        contact_import = ContactImport.objects.create(file=ContentFile(content, name="bench.csv"), original_name="bench.csv",
                                                      uploaded_by=self.user, rows=content.count(b"\n"))
        task_id = job_launch(name="jobs.import_contacts", kwargs={"import_id": contact_import.pk}, system=True).task_id
        done = wait_for(lambda: TaskResult.objects.filter(task_id=task_id, status__in=["SUCCESS", "FAILURE"]).first(),
                        timeout=3600, interval=0.2, message="the import job")
        if done.status != "SUCCESS":
            raise CommandError(f"The import job failed: {done.traceback}")
        return contact_import

    def map_reduce(self, content: bytes) -> ContactImport:
        """The file uploaded as the pages and the API do: checked, stored, imported by its workflow."""
        upload = SimpleUploadedFile("bench.csv", content)
        contact_import = services.contact_import_create(upload=upload, user=self.user, origin="code")
        flow = wait_for(lambda: Workflow.objects.filter(pk=contact_import.workflow_id).exclude(state="RUNNING").first(),
                        timeout=3600, interval=0.2, message="the import workflow")
        if flow.state != Workflow.State.SUCCESS:
            raise CommandError(f"The import workflow ended {flow.state}: {flow.error}")
        return contact_import
