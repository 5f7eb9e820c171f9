"""Bulk CSV import of contacts (the seeds' 大批量数据上传解析): checked before anything is stored,
then imported as a map-reduce workflow: chunks of the file side by side on the `long` queue, then
one step that adds up what they did. Importing is an upsert by owner and email address, so the same
file (or a redelivered chunk) never duplicates a contact."""
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from psycopg2.extras import execute_values

from jobs.spreadsheets import SafeWriter
from jobs.workflows import chord, step
from jobs.workflows.services import workflow_launch

from .models import Contact, ContactImport, ImportRowError

COLUMNS = ("email", "name", "phone")  # email and name required; extra columns are ignored
UPSERT_ROWS = 5000  # contacts written by one statement

# A row's values replace a contact's only if they come from the same import's later line or from a newer import.
CONTACTS_UPSERT_SQL = f"""
    INSERT INTO {Contact._meta.db_table} AS contact (owner_id, email, name, phone, updated_at, source_id, line)
    VALUES %s
    ON CONFLICT (owner_id, email) DO UPDATE
    SET name = EXCLUDED.name, phone = EXCLUDED.phone, updated_at = EXCLUDED.updated_at,
        source_id = EXCLUDED.source_id, line = EXCLUDED.line
    WHERE contact.source_id IS NULL OR (contact.source_id, contact.line) <= (EXCLUDED.source_id, EXCLUDED.line)
"""


class ImportRefused(ValueError):
    """The upload breaks a limit or is not a contacts CSV; nothing was stored or enqueued."""


@dataclass(frozen=True)
class Chunk:
    """Rows of the file read on their own: bytes `start` to `end`, beginning at line `line`."""

    start: int
    end: int
    line: int


class _Lines(Iterator[str]):
    """A binary file's lines, decoded, counting the bytes read: a CSV reader over it has read a
    row's last byte at `position` (it reads no further than the row)."""

    def __init__(self, file: BinaryIO):
        self.file, self.position = file, 0

    def __next__(self) -> str:
        line = self.file.readline()
        if not line:
            raise StopIteration
        encoding = "utf-8-sig" if self.position == 0 else "utf-8"
        self.position += len(line)
        return line.decode(encoding)


def _csv_scan(file: BinaryIO, chunk_rows: int) -> tuple[list[str], int, list[Chunk]]:
    """The file's header, its rows and its chunks of `chunk_rows` rows, in one pass that holds one row."""
    lines = _Lines(file)
    reader = csv.reader(lines)
    header = [column.strip().lower() for column in next(reader, [])]
    rows, chunks = 0, []
    start, line = lines.position, reader.line_num + 1
    for _ in reader:
        rows += 1
        if rows % chunk_rows == 0:
            chunks.append(Chunk(start, lines.position, line))
            start, line = lines.position, reader.line_num + 1
    if lines.position > start:
        chunks.append(Chunk(start, lines.position, line))
    return header, rows, chunks


def contact_import_create(*, upload: UploadedFile, user: AbstractBaseUser, origin: str) -> ContactImport:
    """Check an uploaded CSV, store it, and launch its import (after commit)."""
    if upload.size > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(f"The file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} "
                            "(IMPORT_MAX_BYTES). Split it into smaller files.")
    content = upload.read()
    try:
        header, rows, chunks = _csv_scan(io.BytesIO(content), settings.IMPORT_CHUNK_ROWS)
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
        # Map, then reduce. On the uploader's behalf: the import's jobs themselves are staff-only.
        spec = chord([step("jobs.import_contacts_chunk", import_id=contact_import.pk, **asdict(chunk)) for chunk in chunks],
                     step("jobs.import_contacts_summary", input="chunks", import_id=contact_import.pk))
        contact_import.workflow = workflow_launch(spec=spec, name="contacts.import", launched_by=user, origin=origin,
                                                 system=True)
        contact_import.save(update_fields=["workflow"])
    return contact_import


def _parse(row: list[str], positions: dict[str, int]) -> tuple[str, str, str]:
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
    return email, values["name"], values.get("phone", "")


def contact_import_chunk(*, import_id: int, start: int, end: int, line: int) -> dict[str, int]:
    """Import one chunk of an import's file, in one transaction: valid rows upserted by email, invalid
    ones recorded with their line. Holds the chunk, never the file; run again, it does the same."""
    contact_import = ContactImport.objects.get(pk=import_id)
    with contact_import.file.open("rb") as file:
        header = [column.strip().lower() for column in next(csv.reader(_Lines(file)))]
        file.seek(start)
        text = file.read(end - start).decode("utf-8")
    positions = {column: header.index(column) for column in COLUMNS if column in header}
    owner_id, now = contact_import.uploaded_by_id, timezone.now()
    contacts: dict[str, tuple] = {}  # by email: the last row for an address wins
    errors: list[ImportRowError] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = 0
    for row in reader:
        rows += 1
        row_line = line + reader.line_num - 1
        try:
            email, name, phone = _parse(row, positions)
            contacts[email] = (owner_id, email, name, phone, now, import_id, row_line)
        except ValidationError as exc:
            # A ValidationError refers to itself (error_list): through its traceback, this frame and
            # the chunk's rows would outlive the call until the cycle collector ran.
            exc.__traceback__ = None
            errors.append(ImportRowError(contact_import=contact_import, line=row_line,
                                         reason="; ".join(exc.messages)[:255],
                                         raw=",".join(row).replace("\x00", "\\x00")))
    with transaction.atomic(), connection.cursor() as cursor:
        contact_import.errors.filter(line__gte=line, line__lt=line + reader.line_num).delete()  # a run before this one's
        ImportRowError.objects.bulk_create(errors)
        # In address order: chunks writing side by side lock their common contacts in the same order, never deadlock.
        execute_values(cursor.cursor, CONTACTS_UPSERT_SQL, sorted(contacts.values(), key=lambda row: row[1]),
                       page_size=UPSERT_ROWS)
    return {"rows": rows, "imported": len(contacts), "invalid": len(errors)}


def contact_import_summarize(*, import_id: int, chunks: list[dict[str, int]]) -> dict[str, int]:
    """Add up what an import's chunks did, and record it on the import."""
    totals = {key: sum(chunk[key] for chunk in chunks) for key in ("rows", "imported", "invalid")}
    ContactImport.objects.filter(pk=import_id).update(imported=totals["imported"], invalid=totals["invalid"])
    return totals


def contact_import_run(*, import_id: int, report_progress: Callable[[int, int, str], None]) -> dict[str, int]:
    """Import the whole file in one job, chunk after chunk (imports queued before workflows, and a
    benchmark's baseline); stopped by its soft time limit, it keeps the chunks done."""
    contact_import = ContactImport.objects.get(pk=import_id)
    with contact_import.file.open("rb") as file:
        _, _, chunks = _csv_scan(file, settings.IMPORT_CHUNK_ROWS)
    done: list[dict[str, int]] = []
    totals = {"rows": 0, "imported": 0, "invalid": 0}
    for chunk in chunks:
        done.append(contact_import_chunk(import_id=import_id, **asdict(chunk)))
        totals = contact_import_summarize(import_id=import_id, chunks=done)
        report_progress(totals["rows"], contact_import.rows,
                        f"{totals['imported']:,} imported, {totals['invalid']:,} invalid")
    return totals


def import_errors_csv(contact_import: ContactImport) -> str:
    """The refused rows as CSV: line, reason, the row as uploaded."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["line", "reason", "row"])
    for error in contact_import.errors.all().iterator():
        writer.writerow([error.line, error.reason, error.raw])
    return buffer.getvalue()
