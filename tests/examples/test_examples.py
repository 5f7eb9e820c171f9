"""The seeds' jobs, each through its service, with I/O at the edge only (SMTP, HTTP, files)."""
import shutil
import smtplib
import tempfile
import time
from unittest import mock

import httpx
from django.contrib.auth.models import User
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail.backends.locmem import EmailBackend
from django.test import SimpleTestCase, TestCase, override_settings
from django_celery_results.models import TaskResult

from jobs import contacts, fetch, reports, signup
from jobs.catalog import find_job
from jobs.models import Contact, ContactImport, EmailDelivery, JobRecord, Report
from site_config import celery_app

from .local_http import LocalServer


class FailingSMTPBackend(EmailBackend):
    """An SMTP server that drops the connection: the outside world, failing."""

    calls = 0

    def send_messages(self, messages):
        type(self).calls += 1
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class RoutingTests(SimpleTestCase):
    def test_each_job_goes_to_its_queue(self):
        route = celery_app.amqp.router.route
        for name, queue in (("jobs.send_activation_email", "email"), ("jobs.import_contacts", "long"),
                            ("jobs.build_report", "long"), ("jobs.countdown", "long"),
                            ("jobs.fetch_url", "default"), ("jobs.add", "default"), ("jobs.say_hello", "default")):
            with self.subTest(job=name):
                self.assertEqual(route({}, name)["queue"].name, queue)

    def test_every_queue_supports_priorities(self):
        self.assertEqual(celery_app.conf.task_queue_max_priority, 9)


class SignupTests(TestCase):
    def signup(self, **fields):
        return self.client.post("/accounts/signup/", {
            "username": "ada", "email": "Ada@Example.com", "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase", **fields,
        })

    def test_signup_creates_an_inactive_user_and_queues_the_email_with_its_id(self):
        task = find_job("jobs.send_activation_email")
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.signup()
        self.assertContains(response, "We sent an activation link to <strong>ada@example.com</strong>")
        user = User.objects.get(username="ada")
        self.assertFalse(user.is_active)
        with mock.patch.object(task, "apply_async") as apply_async:
            for callback in callbacks:
                callback()
        apply_async.assert_called_once_with((user.pk,), {})

    def test_an_address_with_an_account_is_refused(self):
        User.objects.create_user("old", email="ada@example.com")
        self.assertContains(self.signup(), "An account with this email address exists already.")

    def test_the_email_is_sent_once_and_its_link_activates_the_account(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        self.assertTrue(signup.activation_email_send(user_id=user.pk))
        self.assertFalse(signup.activation_email_send(user_id=user.pk))  # a redelivered task
        self.assertEqual(len(mail.outbox), 1)
        link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/activate/" in line)
        self.assertTrue(link.startswith("http://localhost:8000/accounts/activate/"))
        response = self.client.get(link.removeprefix("http://localhost:8000"), follow=True)
        self.assertContains(response, "Your account is active.")
        self.assertTrue(User.objects.get(pk=user.pk).is_active)

    def test_expired_and_altered_links_are_refused(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        token = signup.activation_link(user).rsplit("/", 2)[-2]
        with mock.patch("django.core.signing.time.time", return_value=time.time() + 4 * 86400):
            response = self.client.get(f"/accounts/activate/{token}/", follow=True)
        self.assertContains(response, "This activation link has expired.")
        response = self.client.get(f"/accounts/activate/{token}x/", follow=True)
        self.assertContains(response, "This activation link is not valid.")
        self.assertFalse(User.objects.get(pk=user.pk).is_active)

    @override_settings(EMAIL_BACKEND="tests.test_seed_jobs.FailingSMTPBackend")
    def test_smtp_errors_are_retried_a_bounded_number_of_times_then_fail(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        FailingSMTPBackend.calls = 0
        result = find_job("jobs.send_activation_email").apply(args=[user.pk])  # retries run at once, eagerly
        self.assertEqual(result.state, "FAILURE")
        self.assertIsInstance(result.result, smtplib.SMTPServerDisconnected)
        self.assertEqual(FailingSMTPBackend.calls, 1 + 5)
        self.assertFalse(EmailDelivery.objects.filter(sent_at__isnull=False).exists())

    def test_the_email_job_keeps_no_result_but_keeps_failures(self):
        task = find_job("jobs.send_activation_email")
        self.assertTrue(task.ignore_result)
        self.assertTrue(task.store_errors_even_if_ignored)
        self.assertTrue(task.retry_jitter)


class FetchTests(SimpleTestCase):
    def test_summary_of_a_page(self):
        with LocalServer() as server:
            summary = fetch.url_summarize(url=server.url("/page"))
        self.assertEqual(summary["status"], 200)
        self.assertEqual(summary["title"], "Café prices")
        self.assertGreater(summary["bytes"], 1000)

    def test_client_errors_are_not_retried_server_errors_and_timeouts_are(self):
        with LocalServer() as server:
            with self.assertRaisesMessage(fetch.FetchRefused, "answered 404; not retrying a client error"):
                fetch.url_summarize(url=server.url("/missing"))
            with self.assertRaisesMessage(fetch.FetchTemporaryError, "answered 503"):
                fetch.url_summarize(url=server.url("/flaky-unit"))
            with mock.patch.object(fetch, "TIMEOUT", httpx.Timeout(0.5)), \
                    self.assertRaisesMessage(fetch.FetchTemporaryError, "ReadTimeout"):
                fetch.url_summarize(url=server.url("/slow"))
        task = find_job("jobs.fetch_url")
        self.assertIn(fetch.FetchTemporaryError, task.autoretry_for)
        self.assertFalse(any(issubclass(fetch.FetchRefused, kind) for kind in task.autoretry_for))

    def test_the_url_argument_must_be_a_web_address(self):
        with self.assertRaisesMessage(Exception, "url: Input should be a valid URL"):
            find_job("jobs.fetch_url").json_arguments(["not a url"])


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
            return contacts.contact_import_create(upload=csv_upload(text, **kwargs), user=self.user, origin="page")

    def assertRefused(self, text, message):
        with self.assertRaisesMessage(contacts.ImportRefused, message):
            self.upload(text)
        self.assertFalse(ContactImport.objects.exists())
        self.assertFalse(TaskResult.objects.exists())

    def test_bad_files_are_refused_before_anything_is_stored_or_queued(self):
        self.assertRefused("name,phone\nAda,1\n", "missing: email")
        self.assertRefused("email,name\n", "no rows to import")
        with self.assertRaisesMessage(contacts.ImportRefused, "not a UTF-8 CSV file"):
            contacts.contact_import_create(upload=SimpleUploadedFile("x.csv", b"\xff\xfe\x00e"), user=self.user,
                                           origin="page")
        with override_settings(IMPORT_MAX_ROWS=2):
            self.assertRefused("email,name\na@x.io,A\nb@x.io,B\nc@x.io,C\n", "has 3 rows; the limit is 2")
        with override_settings(IMPORT_MAX_BYTES=10):
            self.assertRefused("email,name\na@x.io,A\n", "the limit is 10 (IMPORT_MAX_BYTES)")

    def test_a_good_file_is_stored_and_its_import_queued_on_the_long_queue(self):
        contact_import = self.upload("Email,Name,Phone\nada@x.io,Ada,1\n")
        self.assertEqual(contact_import.rows, 1)
        record = JobRecord.objects.get(result__task_id=contact_import.task_id)
        self.assertEqual((record.queue, record.arguments["kwargs"]), ("long", {"import_id": contact_import.pk}))

    def test_import_upserts_valid_rows_records_invalid_ones_and_never_duplicates(self):
        text = ("email,name,phone\n"
                "ada@x.io,Ada,1\n"
                "not-an-email,Bob,2\n"
                "cy@x.io,,3\n"
                "\"dee@x.io\",\"Dee, Jr.\",4\n"
                "ADA@x.io,Ada Lovelace,5\n")
        contact_import = self.upload(text)
        progress = mock.Mock()
        with mock.patch.object(contacts, "CHUNK_ROWS", 2):
            counts = contacts.contact_import_run(import_id=contact_import.pk, report_progress=progress)
        self.assertEqual(counts, {"rows": 5, "imported": 3, "invalid": 2})
        self.assertEqual(dict(Contact.objects.values_list("email", "name")),
                         {"ada@x.io": "Ada Lovelace", "dee@x.io": "Dee, Jr."})
        self.assertEqual([(e.line, e.reason) for e in contact_import.errors.all()],
                         [(3, "Enter a valid email address."), (4, "the name is empty")])
        self.assertEqual([call.args[:2] for call in progress.call_args_list], [(2, 5), (4, 5), (5, 5)])
        self.assertEqual(contacts.import_errors_csv(contact_import).splitlines(),
                         ["line,reason,row", "3,Enter a valid email address.,\"not-an-email,Bob,2\"",
                          "4,the name is empty,\"cy@x.io,,3\""])

        contacts.contact_import_run(import_id=contact_import.pk, report_progress=progress)  # a redelivery
        self.upload(text)  # the same file again
        contacts.contact_import_run(import_id=ContactImport.objects.first().pk, report_progress=progress)
        self.assertEqual(Contact.objects.count(), 2)
        self.assertEqual(contact_import.errors.count(), 2)

    def test_a_soft_time_limit_keeps_what_was_imported_and_a_rerun_finishes(self):
        from celery.exceptions import SoftTimeLimitExceeded

        text = "email,name\n" + "".join(f"p{n}@x.io,P{n}\n" for n in range(10))
        contact_import = self.upload(text)
        parse = contacts._parse
        calls = 0

        def parse_until_the_limit(row, positions):
            nonlocal calls
            calls += 1
            if calls == 6:
                raise SoftTimeLimitExceeded()
            return parse(row, positions)

        with mock.patch.object(contacts, "CHUNK_ROWS", 2), mock.patch.object(contacts, "_parse", parse_until_the_limit), \
                self.assertRaises(SoftTimeLimitExceeded):
            contacts.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        contact_import.refresh_from_db()
        self.assertEqual((contact_import.imported, Contact.objects.count()), (5, 5))
        contacts.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        self.assertEqual(Contact.objects.count(), 10)

    def test_upload_page_and_api(self):
        self.client.force_login(self.user)
        with self.captureOnCommitCallbacks():
            response = self.client.post("/imports/", {"file": csv_upload("email,name\nada@x.io,Ada\n")})
        contact_import = ContactImport.objects.get()
        self.assertRedirects(response, f"/jobs/{contact_import.task_id}/", fetch_redirect_response=False)
        response = self.client.post("/imports/", {"file": csv_upload("name\nAda\n")})
        self.assertContains(response, "missing: email")
        with self.captureOnCommitCallbacks():
            response = self.client.post("/api/imports/", {"file": csv_upload("email,name\nbo@x.io,Bo\n")})
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.json()["rows"], 1)
        with override_settings(IMPORT_MAX_BYTES=5):
            response = self.client.post("/api/imports/", {"file": csv_upload("email,name\nbo@x.io,Bo\n")})
        self.assertEqual(response.status_code, 413)
        self.assertEqual(ContactImport.objects.count(), 2)

    def test_errors_download_is_for_the_uploader_and_staff(self):
        contact_import = self.upload("email,name\nbad,Bad\n")
        contacts.contact_import_run(import_id=contact_import.pk, report_progress=mock.Mock())
        self.client.force_login(User.objects.create_user("someone"))
        self.assertEqual(self.client.get(f"/imports/{contact_import.pk}/errors.csv").status_code, 404)
        self.client.force_login(self.user)
        response = self.client.get(f"/imports/{contact_import.pk}/errors.csv")
        self.assertEqual(response["Content-Type"], "text/csv")
        self.assertIn(b"2,Enter a valid email address.,\"bad,Bad\"", response.content)


class ReportTests(TestCase):
    def setUp(self):
        media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, media)
        self.enterContext(override_settings(MEDIA_ROOT=media))

    def test_report_counts_jobs_per_day_and_status_and_is_downloadable_by_staff(self):
        TaskResult.objects.create(task_id="a", status="SUCCESS")
        TaskResult.objects.create(task_id="b", status="FAILURE")
        TaskResult.objects.create(task_id="c", status="SUCCESS")
        Contact.objects.create(email="ada@x.io", name="Ada")
        report = reports.report_build(days=7)
        lines = report.file.open("rb").read().decode().splitlines()
        self.assertEqual(lines[1], "day,FAILURE,SUCCESS,total")
        self.assertTrue(lines[2].endswith(",1,2,3"))
        self.assertEqual(lines[-1], "contacts,1")

        self.client.force_login(User.objects.create_user("someone"))
        self.assertEqual(self.client.get(f"/reports/{report.pk}/").status_code, 403)
        self.client.force_login(User.objects.create_user("boss", is_staff=True))
        response = self.client.get(f"/reports/{report.pk}/")
        self.assertEqual(b"".join(response.streaming_content).decode().splitlines()[-1], "contacts,1")
        self.assertEqual(Report.objects.count(), 1)
