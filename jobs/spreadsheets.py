"""CSV files that are safe to open in a spreadsheet, for every CSV the site produces.

A cell that a spreadsheet reads as a formula can run commands or send data away (OWASP: "CSV
injection"). Excel, LibreOffice and Google Sheets read a formula from a cell that begins with
=, +, -, @ (Excel also | and % in some modes), also after leading spaces or line breaks, and also
from the full-width forms of those signs (＝, ＋, －, ＠), which they fold to the plain ones. Such a
cell, and any cell that begins with a control character (tab, carriage return, line feed, NUL),
gets a leading apostrophe: the spreadsheet shows the text, and runs nothing. Numbers (int, float)
stay numbers; a test opens every CSV the site produces in LibreOffice and finds no formula.
"""
import csv
import unicodedata
from typing import Any

FORMULA_SIGNS = frozenset("=+-@|%")


def neutralize(value: Any) -> Any:
    """`value`, with a leading apostrophe if it is text a spreadsheet could read as a formula."""
    if not isinstance(value, str) or not value:
        return value
    if unicodedata.category(value[0]) == "Cc":  # a tab, a line break, a NUL...
        return "'" + value
    first = value.lstrip()[:1]  # spaces before a sign do not stop the formula
    if first and unicodedata.normalize("NFKC", first)[:1] in FORMULA_SIGNS:
        return "'" + value
    return value


class SafeWriter:
    """csv.writer's writerow and writerows, with every cell neutralized."""

    def __init__(self, file, **options):
        self.writer = csv.writer(file, **options)

    def writerow(self, row):
        return self.writer.writerow([neutralize(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
