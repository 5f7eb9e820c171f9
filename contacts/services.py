"""Bulk CSV import of contacts (the seeds' 大批量数据上传解析): checked before anything is stored,
then imported in chunks by a job on the `long` queue. Importing is an upsert by email address,
so the same file (or a redelivered job) never duplicates a contact."""
import csv
import io
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import transaction

from jobs.services import job_launch
from jobs.spreadsheets import SafeWriter

from .models import Contact, ContactImport, ImportRowError

COLUMNS = ("email", "name", "phone")  # email and name required; extra columns are ignored
CHUNK_ROWS = 5000


class ImportRefused(ValueError):
    """The upload breaks a limit or is not a contacts CSV; nothing was stored or enqueued."""


def contact_import_create(*, upload: UploadedFile, user: AbstractBaseUser, origin: str) -> ContactImport:
    """Check an uploaded CSV, store it, and queue its import (after commit)."""
    if upload.size > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(f"The file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} "
                            "(IMPORT_MAX_BYTES). Split it into smaller files.")
    content = upload.read()
    try:
        reader = csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""))
        header = [column.strip().lower() for column in next(reader, [])]
        rows = sum(1 for _ in reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportRefused(f"The file is not a UTF-8 CSV file ({exc}).") from exc
    missing = [column for column in COLUMNS[:2] if column not in header]
    if missing:
        raise ImportRefused(f"The first line must name the columns; missing: {', '.join(missing)}. "
                            f"Expected email, name and optionally phone; got: {', '.join(header) or 'nothing'}.")
    if rows == 0:
        raise ImportRefused("The file has a header but no rows to import.")
    if rows > settings.IMPORT_MAX_ROWS:
        raise ImportRefused(f"The file has {rows:,} rows; the limit is {settings.IMPORT_MAX_ROWS:,} "
                            "(IMPORT_MAX_ROWS). Split it into smaller files.")
    with transaction.atomic():
        contact_import = ContactImport.objects.create(
            file=ContentFile(content, name=upload.name), original_name=upload.name[:255], uploaded_by=user, rows=rows
        )
        # On the uploader's behalf: the import job itself is staff-only.
        result = job_launch(name="jobs.import_contacts", kwargs={"import_id": contact_import.pk},
                            launched_by=user, origin=origin, system=True)
        contact_import.task_id = result.task_id
        contact_import.save(update_fields=["task_id"])
    return contact_import


def _parse(row: list[str], positions: dict[str, int], owner_id: int | None) -> Contact:
    if len(row) < len(positions):
        raise ValidationError(f"expected at least {len(positions)} columns, got {len(row)}")
    if any("\x00" in cell for cell in row):
        raise ValidationError("the row contains a NUL character")
    values = {column: row[position].strip() for column, position in positions.items()}
    email = values["email"].lower()
    validate_email(email)
    if not values["name"]:
        raise ValidationError("the name is empty")
    if len(values["name"]) > 200 or len(values.get("phone", "")) > 40:
        raise ValidationError("the name (200) or phone (40) is too long")
    return Contact(owner_id=owner_id, email=email, name=values["name"], phone=values.get("phone", ""))


def contact_import_run(*, import_id: int, report_progress: Callable[[int, int, str], None]) -> dict[str, int]:
    """Import the file in chunks: valid rows upserted by email, invalid ones recorded with their line."""
    contact_import = ContactImport.objects.get(pk=import_id)
    contact_import.errors.all().delete()  # a re-run (redelivery, retry) starts over
    done = imported = invalid = 0
    contacts: dict[str, Contact] = {}  # by email: in one chunk the last row for an address wins
    errors: list[ImportRowError] = []

    def flush():
        nonlocal imported, invalid
        with transaction.atomic():
            Contact.objects.bulk_create(contacts.values(), update_conflicts=True, unique_fields=["owner", "email"],
                                        update_fields=["name", "phone", "updated_at"])
            ImportRowError.objects.bulk_create(errors)
        imported, invalid = imported + len(contacts), invalid + len(errors)
        contacts.clear()
        errors.clear()
        report_progress(done, contact_import.rows, f"{imported:,} imported, {invalid:,} invalid")

    try:
        with contact_import.file.open("rb") as file:
            reader = csv.reader(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""))
            header = [column.strip().lower() for column in next(reader)]
            positions = {column: header.index(column) for column in COLUMNS if column in header}
            for row in reader:
                done += 1
                try:
                    contact = _parse(row, positions, contact_import.uploaded_by_id)
                    contacts[contact.email] = contact
                except ValidationError as exc:
                    errors.append(ImportRowError(contact_import=contact_import, line=reader.line_num,
                                                 reason="; ".join(exc.messages)[:255],
                                                 raw=",".join(row).replace("\x00", "\\x00")))
                if len(contacts) + len(errors) >= CHUNK_ROWS:
                    flush()
            flush()
    except SoftTimeLimitExceeded:
        flush()  # keep what is done; importing again finishes the job without duplicates
        raise
    finally:
        ContactImport.objects.filter(pk=import_id).update(imported=imported, invalid=invalid)
    return {"rows": done, "imported": imported, "invalid": invalid}


def import_errors_csv(contact_import: ContactImport) -> str:
    """The refused rows as CSV: line, reason, the row as uploaded."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["line", "reason", "row"])
    for error in contact_import.errors.all().iterator():
        writer.writerow([error.line, error.reason, error.raw])
    return buffer.getvalue()
