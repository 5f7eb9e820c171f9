"""Every CSV the site produces, opened in a real spreadsheet (LibreOffice Calc, headless, Debian's
libreoffice-calc-nogui): no cell becomes a formula, whatever the users wrote into it."""
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.test import TestCase

from contacts.models import ContactImport, ImportRowError
from contacts.services import import_errors_csv
from jobs.spreadsheets import SafeWriter
from reports.services import report_build

# What an attacker can put in an uploaded row: every way a cell may start a formula.
HOSTILE = ["=1+1", "+1+1", "-1+1", "@SUM(1;1)", "\t=1+1", "\r=1+1", "\n=1+1", " =1+1", "  +1+1", "＝1+1",
           "＋1+1", "|calc", "%1", "=HYPERLINK(\"http://example.org\";\"x\")", "=cmd|' /C calc'!A0"]


def formulas_in(csv_text: str) -> list[str]:
    """The formulas LibreOffice Calc finds when it opens `csv_text` as a CSV file."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "file.csv").write_text(csv_text, encoding="utf-8")
        subprocess.run(["soffice", f"-env:UserInstallation=file://{folder}/profile", "--headless",
                        "--convert-to", "fods", "--outdir", folder, f"{folder}/file.csv"],
                       check=True, capture_output=True, timeout=120)
        return re.findall(r'table:formula="([^"]*)"', (Path(folder) / "file.fods").read_text(encoding="utf-8"))


class CsvInSpreadsheetTests(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("soffice") is None:
            raise cls.failureException("LibreOffice is needed: apt-get install libreoffice-calc-nogui (.ci/run does)")

    def test_the_check_sees_a_formula_where_there_is_one(self):
        """The control: written without the site's writer, the same cells are formulas."""
        self.assertIn("of:=1+1", formulas_in("\n".join(HOSTILE) + "\n"))

    def test_an_imports_refused_rows_open_without_a_formula(self):
        contact_import = ContactImport.objects.create(original_name="people.csv", rows=len(HOSTILE))
        ImportRowError.objects.bulk_create(
            ImportRowError(contact_import=contact_import, line=line, reason=value, raw=f"{value},{value}")
            for line, value in enumerate(HOSTILE, start=2))
        self.assertEqual(formulas_in(import_errors_csv(contact_import)), [])

    def test_a_report_opens_without_a_formula(self):
        self.assertEqual(formulas_in(report_build(days=3).file.read().decode()), [])

    def test_the_writer_leaves_no_formula_in_any_cell(self):
        buffer = io.StringIO()
        SafeWriter(buffer).writerows([HOSTILE, [value.upper() for value in HOSTILE], [-1, 2.5, "plain"]])
        self.assertEqual(formulas_in(buffer.getvalue()), [])
