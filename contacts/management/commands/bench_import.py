import tempfile
import time
from unittest import mock

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from contacts import services
from contacts.models import Contact
from jobs.testing.databases import throwaway_database


class Command(BaseCommand):
    help = "Time the CSV import job's work on a generated file (1% invalid rows), in a throwaway database."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)

    def handle(self, *args, rows, **options):
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        lines = ["email,name,phone"] + [
            f"person{n}@example.com,Person {n},+1 555 {n:07d}" if n % 100 else f"broken-{n},Person {n},"
            for n in range(rows)
        ]
        upload = SimpleUploadedFile("bench.csv", "\n".join(lines).encode())
        with throwaway_database("import"), tempfile.TemporaryDirectory() as media, \
                override_settings(MEDIA_ROOT=media, IMPORT_MAX_ROWS=max(rows, 1), IMPORT_MAX_BYTES=upload.size):
            user = User.objects.create_user("bench", is_staff=True)
            with mock.patch("jobs.services._publish"):  # time the job's work, not the broker
                started = time.perf_counter()
                contact_import = services.contact_import_create(upload=upload, user=user, origin="code")
                checked = time.perf_counter()
            counts = services.contact_import_run(import_id=contact_import.pk, report_progress=lambda *a: None)
            first = time.perf_counter() - checked
            started_again = time.perf_counter()
            services.contact_import_run(import_id=contact_import.pk, report_progress=lambda *a: None)
            again = time.perf_counter() - started_again
            self.stdout.write(
                f"{rows:,} rows ({upload.size / 1e6:.1f} MB): upload checked and stored in "
                f"{checked - started:.2f} s; imported {counts['imported']:,}, refused {counts['invalid']:,} in "
                f"{first:.2f} s ({rows / first:,.0f} rows/s); the same file again (all updates) in {again:.2f} s; "
                f"{Contact.objects.count():,} contacts."
            )
