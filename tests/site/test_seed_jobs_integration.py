"""The seeds' jobs on real workers, one per queue as in production, on the real broker."""
import email
import shutil
import tempfile
import time
from pathlib import Path

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TransactionTestCase, override_settings, tag
from django_celery_results.models import TaskResult

from contacts.models import Contact, ContactImport
from jobs.launching.services import job_launch
from jobs.models import JobRecord, Workflow
from jobs.testing.processes import Worker, wait_for
from tests.local_http import LocalServer
from tests.users import grant


@tag("integration")
class SeedJobsOnRealWorkersTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.media = tempfile.mkdtemp()
        cls.outbox = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, cls.media)
        cls.addClassCleanup(shutil.rmtree, cls.outbox)
        # filemail:// paths drop one leading slash: four for an absolute path.
        environment = {"MEDIA_ROOT": cls.media, "EMAIL_URL": f"filemail:///{cls.outbox}",
                       "FETCH_ALLOWED_NETWORKS": "127.0.0.1/32"}  # the stand-in third party
        cls.workers = [Worker(concurrency=concurrency, queues=queue, environment=environment)
                       for queue, concurrency in (("default", 1), ("email", 1), ("long", 2))]
        for worker in cls.workers:
            worker.start()
            cls.addClassCleanup(worker.stop)

    def setUp(self):
        self.enterContext(override_settings(MEDIA_ROOT=self.media))
        self.staff = grant(User.objects.create_user("ops", is_staff=True), "django_celery_results.view_taskresult",
                           "reports.view_report")
        self.client.force_login(self.staff)

    def logs(self) -> str:
        return "\n".join(worker.output() for worker in self.workers)

    def finished(self, task_id: str, timeout: float = 30) -> TaskResult:
        return wait_for(
            lambda: TaskResult.objects.filter(task_id=task_id, status__in=["SUCCESS", "FAILURE"]).first(),
            timeout=timeout, interval=0.1, message=f"job {task_id}; logs:\n{self.logs()[-3000:]}",
        )

    def test_signup_email_lands_on_the_email_worker_and_its_link_activates(self):
        self.client.logout()
        self.client.post("/accounts/signup/", {"email": "ada@example.com",
                                               "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"})
        # Django's file backend ends each message with a line of 79 dashes.
        sent = wait_for(lambda: [f for f in Path(self.outbox).iterdir() if f.read_text().endswith("-" * 79 + "\n")],
                        timeout=30, message=f"the activation email; email worker:\n{self.workers[1].output()[-3000:]}")
        message = email.message_from_string(sent[0].read_text())
        self.assertEqual(message["To"], "ada@example.com")
        body = message.get_payload(decode=True).decode()
        link = next(line for line in body.splitlines() if "/accounts/activate/" in line)
        self.client.get(link.removeprefix("http://localhost:8000"))
        self.assertTrue(User.objects.get(username="ada@example.com").is_active)
        self.assertIn("Task jobs.send_activation_email", self.workers[1].output())

    @override_settings(IMPORT_CHUNK_ROWS=500)
    def test_csv_import_runs_its_chunks_side_by_side_on_the_long_worker_and_never_duplicates(self):
        rows = "".join(f"person{n}@example.com,Person {n},{n}\n" for n in range(3000))
        # Addresses met again in later chunks: their last line wins, whichever chunk runs last.
        again = "".join(f"person{n}@example.com,Again {n},{n}\n" for n in range(0, 3000, 7))
        text = "email,name,phone\n" + rows + "broken,No email,0\n" + again
        for _ in range(2):  # the same file twice
            response = self.client.post("/api/imports/", {"file": SimpleUploadedFile("c.csv", text.encode())})
            self.assertEqual(response.status_code, 202, response.content)
            job = self.finished(response.json()["job"].rstrip("/").rsplit("/", 1)[-1])
            self.assertEqual(job.status, "SUCCESS", job.result)
            contact_import = ContactImport.objects.get(pk=response.json()["id"])
            # The summary's result is stored before its worker marks the workflow done (task_success):
            # two writes, so the workflow's state is awaited, not read at once.
            ended = Workflow.objects.filter(pk=contact_import.workflow_id, state="SUCCESS")
            flow = wait_for(ended.first, timeout=10, message=f"the import's workflow to end; logs:\n{self.logs()[-3000:]}")
            self.assertEqual(flow.steps_total, 7 + 1)
            self.assertEqual((contact_import.imported, contact_import.invalid), (3000 + 429, 1))
        self.assertEqual(Contact.objects.count(), 3000)
        self.assertEqual(Contact.objects.filter(name__startswith="Again").count(), 429)
        chunks_done = [line for line in self.workers[2].output().splitlines()
                       if "Task jobs.import_contacts_chunk" in line and "succeeded" in line]
        self.assertEqual(len(chunks_done), 2 * 7)
        processes = {line.split("/ForkPoolWorker-")[1].split("]")[0] for line in chunks_done}
        self.assertGreaterEqual(len(processes), 2, chunks_done)  # both of the worker's processes imported
        errors = self.client.get(response.json()["errors"])
        self.assertIn(b"3002,Enter a valid email address.,\"broken,No email,0\"", errors.content)

    def test_fetch_retries_a_failing_third_party_until_it_answers(self):
        with LocalServer() as server:
            flaky = job_launch(name="jobs.fetch_url", args=[server.url("/flaky-integration")])
            missing = job_launch(name="jobs.fetch_url", args=[server.url("/missing")])
            done = self.finished(flaky.task_id)
            refused = self.finished(missing.task_id)
        self.assertEqual(done.status, "SUCCESS")
        self.assertIn('"title": "Caf\\u00e9 prices"', done.result)
        flaky_job = JobRecord.objects.get(result__task_id=flaky.task_id)
        self.assertEqual(flaky_job.attempts, 3)  # two 503s, then the answer
        self.assertIn("answered 503", flaky_job.last_error)
        self.assertEqual(refused.status, "FAILURE")
        self.assertEqual(JobRecord.objects.get(result__task_id=missing.task_id).attempts, 1)  # a 404 is not retried

    def test_report_job_builds_a_file_the_jobs_page_links_to(self):
        report = job_launch(name="jobs.build_report", kwargs={"days": 7})
        self.assertEqual(self.finished(report.task_id).status, "SUCCESS")
        page = self.client.get(f"/jobs/{report.task_id}/")
        url = page.context["job"]["result"]["download_url"]
        self.assertContains(page, f'<a class="button" href="{url}">Download</a>', html=True)
        download = self.client.get(url)
        self.assertIn(b"Jobs per day and status, last 7 days", b"".join(download.streaming_content))

    def test_a_job_past_its_time_limit_is_stopped_and_not_run_again(self):
        """Its time limits (here 1 s soft, 2 s hard) end a run; the message is acknowledged, never redelivered."""
        job = job_launch(name="jobs.countdown", args=[10],
                                  options={"queue": "long", "soft_time_limit": 1, "time_limit": 2})
        self.assertEqual(self.finished(job.task_id).status, "FAILURE")
        self.assertIn("TimeLimitExceeded", TaskResult.objects.get(task_id=job.task_id).result)
        time.sleep(3)
        self.assertEqual(self.workers[2].output().count(f"Task jobs.countdown[{job.task_id}] received"), 1)
        self.assertEqual(TaskResult.objects.get(task_id=job.task_id).status, "FAILURE")
