import io

from django.test import SimpleTestCase

from jobs.spreadsheets import SafeWriter, neutralize


class SafeCsvTests(SimpleTestCase):
    def test_formula_starts_get_an_apostrophe_and_nothing_else_changes(self):
        for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\n=1+1", " =1+1", "\u3000+1", "\xa0-1",
                      "＝1+1", "＋1", "－1", "＠SUM(A1)", "|calc", "%0A", "\x00=1"):
            with self.subTest(value=value):
                self.assertEqual(neutralize(value), "'" + value)
        for value in ("plain", "a=b", 42, -3, 2.5, None, "", " plain", "Zoë"):
            with self.subTest(value=value):
                self.assertEqual(neutralize(value), value)

    def test_the_writer_neutralizes_every_cell(self):
        buffer = io.StringIO()
        SafeWriter(buffer).writerows([["=cmd|' /C calc'!A0", 7], ["ok", "-2"]])
        self.assertEqual(buffer.getvalue().splitlines(), ["'=cmd|' /C calc'!A0,7", "ok,'-2"])
