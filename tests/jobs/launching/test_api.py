import json
import uuid
from unittest import mock

from celery import states
from django.contrib.auth.models import User
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import reverse
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.launching import selectors as launching_selectors
from jobs.models import JobAction, JobRecord
from jobs.queues import selectors as queues_selectors
from tests.users import grant


class ApiTestCase(TestCase):
    """Signed in with a session (the engine's own authentication; bearer tokens: tests.accounts)."""

    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("alice", password="a-long-password")

    def setUp(self):
        self.client.force_login(self.user)

    def post_job(self, body, **headers):
        data = body if isinstance(body, str) else json.dumps(body)
        return self.client.post("/api/jobs/", data, content_type="application/json", **headers)

    def get(self, path):
        return self.client.get(path)


class JobLaunchTests(ApiTestCase):
    def test_launch_answers_202_and_enqueues_after_commit(self):
        """The job is recorded PENDING, and published with its id only once the row commits."""
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.post_job({"task": "testapp.add", "args": [4, 4]})
        self.assertEqual(response.status_code, 202)
        body = response.json()
        self.assertEqual((body["task"], body["status"], body["result"]), ("testapp.add", "PENDING", None))
        self.assertEqual(body["url"], f"http://testserver/api/jobs/{body['id']}/")
        self.assertEqual(response["Location"], body["url"])
        self.assertEqual(TaskResult.objects.get(task_id=body["id"]).status, states.PENDING)

        self.assertEqual(len(callbacks), 1)
        with mock.patch.object(find_job("testapp.add"), "apply_async") as apply_async:
            callbacks[0]()
        apply_async.assert_called_once_with(kwargs={"x": 4, "y": 4}, task_id=body["id"])

    def test_status_url_shows_the_pending_job_right_away(self):
        with self.captureOnCommitCallbacks():
            launched = self.post_job({"task": "testapp.say_hello", "kwargs": {"name": "Ada"}}).json()
        response = self.get(launched["url"])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["status"], "PENDING")


class BrokerDownTests(TransactionTestCase):
    """Real commits, so the publish happens inside the request as it does in production."""

    def test_broker_down_answers_503_and_leaves_no_pending_record(self):
        from kombu.exceptions import OperationalError

        self.client.force_login(User.objects.create_user("bob"))
        with mock.patch.object(find_job("testapp.add"), "apply_async", side_effect=OperationalError("connection refused")):
            response = self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                        content_type="application/json")
        self.assertEqual(response.status_code, 503)
        self.assertIn("not enqueued", response.json()["detail"])
        record = TaskResult.objects.get()
        self.assertEqual(record.status, states.REVOKED)  # never run, even if the message got through
        self.assertEqual(self.client.get(f"/api/jobs/{record.task_id}/").json()["error"],
                         "JobQueueUnavailable: Not queued: the job queue was unavailable (connection refused). "
                         "It will not run; launch it again.")

    def test_a_publish_whose_confirm_was_lost_after_a_worker_took_the_job_answers_202(self):
        """The message got through (a worker started the job) though the publish reported an error:
        the launch was accepted, and the answer says so."""
        from kombu.exceptions import OperationalError

        def publish_then_lose_the_confirm(*args, task_id, **kwargs):
            TaskResult.objects.filter(task_id=task_id).update(status=states.STARTED)  # a worker took it
            raise OperationalError("connection lost before the confirm")

        self.client.force_login(User.objects.create_user("bob"))
        with mock.patch.object(find_job("testapp.add"), "apply_async", side_effect=publish_then_lose_the_confirm):
            response = self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                        content_type="application/json")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(TaskResult.objects.get().status, states.STARTED)


class BadLaunchTests(ApiTestCase):
    """Each bad request gets a 4xx a person can act on, and nothing is recorded or enqueued."""

    def assertRefused(self, response, status, detail):
        self.assertEqual(response.status_code, status, response.content)
        self.assertIn(detail, response.json()["detail"])
        self.assertFalse(TaskResult.objects.exists())

    def launch(self, body, **headers):
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.post_job(body, **headers)
        self.assertEqual(callbacks, [])
        return response

    def test_unknown_task_lists_the_valid_ones(self):
        response = self.launch({"task": "jobs.nope"})
        self.assertRefused(response, 422, "Unknown job 'jobs.nope'. Launchable jobs: ")
        named = response.json()["detail"].split("Launchable jobs: ")[1].rstrip(".").split(", ")
        self.assertEqual(named, sorted(named))
        self.assertLessEqual({"testapp.add", "testapp.countdown", "testapp.add_chain"}, set(named))
        self.assertNotIn("testapp.purge", response.json()["detail"])  # staff only
        self.assertEqual(response.json()["errors"][0]["field"], "task")

    def test_restricted_jobs_need_the_permission_being_staff_is_not_enough(self):
        User.objects.filter(pk=self.user.pk).update(is_staff=True)
        response = self.launch({"task": "testapp.purge", "args": [7]})
        self.assertRefused(response, 403, "testapp.purge is restricted: launching it needs the 'Can launch restricted")
        self.assertEqual(response.json()["errors"][0]["field"], "task")
        self.client.force_login(grant(self.user, "jobs.launch_restricted_job"))
        with self.captureOnCommitCallbacks():
            self.assertEqual(self.post_job({"task": "testapp.purge", "args": [7]}).status_code, 202)

    def test_wrong_argument_types_are_named(self):
        response = self.launch({"task": "testapp.add", "args": ["4", 4]})
        self.assertRefused(response, 422, "Invalid arguments for testapp.add: x: Input should be a valid integer")
        self.assertEqual(response.json()["errors"], [{"field": "x", "message": "Input should be a valid integer"}])

    def test_wrong_argument_names_are_named(self):
        response = self.launch({"task": "testapp.add", "kwargs": {"x": 1, "why": 2}})
        self.assertRefused(response, 422, "y: Field required; why: Extra inputs are not permitted")

    def test_a_nul_character_in_an_argument_is_named_not_a_server_error(self):
        """PostgreSQL's JSON columns refuse \\u0000: the argument is refused before anything is written."""
        response = self.launch('{"task": "testapp.say_hello", "args": ["a\\u0000b"]}')
        self.assertRefused(response, 422, "name: text must not contain NUL characters")
        self.assertEqual(response.json()["errors"][0]["field"], "name")

    def test_malformed_json(self):
        self.assertRefused(self.launch('{"task": "testapp.add",'), 400, "The request body is not valid JSON")

    def test_wrong_shape(self):
        response = self.launch({"job": "testapp.add"})
        self.assertRefused(response, 422, "The request does not have the expected shape")
        self.assertIn({"field": "task", "message": "Field required"}, response.json()["errors"])
        self.assertRefused(self.launch({"task": "testapp.add", "args": {"x": 1}}), 422, "expected shape")

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
    def test_body_too_large(self):
        response = self.launch({"task": "testapp.say_hello", "args": ["x" * 2000]})
        self.assertRefused(response, 413, "Request body too large: the limit is 1000 bytes")

    def test_anonymous_is_refused(self):
        self.client.logout()
        response = self.launch({"task": "testapp.add", "args": [1, 2]})
        self.assertRefused(response, 401, "Authentication required")

    def test_inactive_users_session_is_refused(self):
        User.objects.filter(pk=self.user.pk).update(is_active=False)
        self.assertRefused(self.launch({"task": "testapp.add", "args": [1, 2]}), 401, "Authentication required")


class SessionAuthTests(ApiTestCase):
    def setUp(self):
        self.client = self.client_class(enforce_csrf_checks=True)
        self.client.force_login(self.user)

    def test_signed_in_browser_must_send_the_csrf_token(self):
        response = self.post_job({"task": "testapp.add", "args": [1, 2]})
        self.assertEqual(response.status_code, 403)
        self.assertIn("CSRF check failed", response.json()["detail"])
        self.assertFalse(TaskResult.objects.exists())

    def test_signed_in_browser_with_csrf_token_launches(self):
        self.client.get("/admin/login/")  # sets the csrftoken cookie
        csrf = self.client.cookies["csrftoken"].value
        with self.captureOnCommitCallbacks():
            response = self.post_job({"task": "testapp.add", "args": [1, 2]}, HTTP_X_CSRFTOKEN=csrf)
        self.assertEqual(response.status_code, 202)


class JobDetailTests(ApiTestCase):
    def test_unknown_and_malformed_ids_are_404(self):
        for job_id in ("6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f10", "not-a-uuid"):
            with self.subTest(job_id=job_id):
                response = self.get(f"/api/jobs/{job_id}/")
                self.assertEqual(response.status_code, 404)
                self.assertIn("No job with id", response.json()["detail"])

    def own(self, user=None, **fields) -> TaskResult:
        record = TaskResult.objects.create(**fields)
        JobRecord.objects.create(result=record, launched_by=user or self.user, arguments={"args": [4, 4], "kwargs": {}})
        return record

    def test_success_shows_result_and_timings(self):
        record = self.own(
            task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f11", task_name="testapp.add", status=states.SUCCESS, result="8"
        )
        body = self.get(f"/api/jobs/{record.task_id}/").json()
        self.assertEqual((body["status"], body["result"], body["error"]), ("SUCCESS", 8, None))
        self.assertIsNotNone(body["done_at"])

    def test_failure_shows_the_error_message(self):
        result = json.dumps({"exc_type": "ValueError", "exc_message": ["no such customer"], "exc_module": "builtins"})
        record = self.own(
            task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f12", task_name="testapp.add", status=states.FAILURE, result=result
        )
        body = self.get(f"/api/jobs/{record.task_id}/").json()
        self.assertEqual((body["status"], body["result"], body["error"]), ("FAILURE", None, "ValueError: no such customer"))

    def test_anonymous_is_refused(self):
        self.client.logout()
        self.assertEqual(self.client.get("/api/jobs/6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f10/").status_code, 401)

    def test_other_peoples_jobs_are_404_unless_one_may_view_every_result(self):
        """Being staff is not enough: the admin's view permission on results is what shows all."""
        bob = User.objects.create_user("bob")
        record = self.own(user=bob, task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f13", task_name="testapp.add")
        self.assertEqual(self.get(f"/api/jobs/{record.task_id}/").status_code, 404)
        User.objects.filter(pk=self.user.pk).update(is_staff=True)
        self.assertEqual(self.get(f"/api/jobs/{record.task_id}/").status_code, 404)
        grant(self.user, "django_celery_results.view_taskresult")
        body = self.get(f"/api/jobs/{record.task_id}/").json()
        self.assertEqual((body["launched_by"], body["arguments"]), ("bob", {"args": [4, 4], "kwargs": {}}))

    def test_a_queued_job_says_when_no_worker_may_take_it(self):
        from django.utils import timezone

        from jobs.models import Queue, Worker

        queued = self.own(task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f15", task_name="testapp.add", status="PENDING")
        JobRecord.objects.filter(result=queued).update(queue="default")

        def waiting():
            queues_selectors._queues_served = (0.0, set(), set())  # read afresh, not from the last few seconds
            return self.get(f"/api/jobs/{queued.task_id}/").json()["waiting"]

        self.assertEqual(waiting(), "No worker is consuming queue default: the job waits until one is started for it.")
        Worker.objects.create(hostname="w@h", queues=["default"], consuming=["default"], started_at=timezone.now(),
                              last_heartbeat=timezone.now())
        self.assertIsNone(waiting())
        Queue.objects.create(name="default", paused_at=timezone.now())
        self.assertEqual(waiting(), "Queue default is paused: no worker takes its jobs until an operator resumes it.")
        page = self.client.get(reverse("jobs:detail", args=[queued.task_id]))
        self.assertContains(page, "Queue default is paused")

    def test_progress_is_reported_while_running(self):
        meta = json.dumps({"current": 3, "total": 12, "message": "9 s to go"})
        record = self.own(task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f14", task_name="testapp.countdown",
                          status="PROGRESS", result=meta)
        self.assertEqual(self.get(f"/api/jobs/{record.task_id}/").json()["progress"],
                         {"current": 3, "total": 12, "percent": 25.0, "message": "9 s to go"})


class JobActionTests(ApiTestCase):
    """Retry and cancel: your own jobs, or anyone's with the permission."""

    def own(self, user=None, **fields) -> TaskResult:
        fields.setdefault("task_id", str(uuid.uuid4()))
        result = TaskResult.objects.create(task_name="testapp.add", **fields)
        JobRecord.objects.create(result=result, launched_by=user or self.user, arguments={"args": [4, 4], "kwargs": {}})
        return result

    def test_retry_launches_the_job_again_with_its_arguments(self):
        failed = self.own(status=states.FAILURE)
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post(f"/api/jobs/{failed.task_id}/retry/")
        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        self.assertNotEqual(body["id"], failed.task_id)
        self.assertEqual((body["status"], body["arguments"], response["Location"]),
                         ("PENDING", {"args": [], "kwargs": {"x": 4, "y": 4}}, body["url"]))  # bound by name
        self.assertEqual(JobRecord.objects.get(result__task_id=body["id"]).retry_of_id, failed.pk)
        self.assertEqual(len(callbacks), 1)  # published once committed
        self.assertTrue(JobAction.objects.filter(record_id=failed.pk, kind=JobAction.Kind.RETRY).exists())

    def test_a_job_not_finished_is_not_retried_beside_itself_and_its_page_offers_no_retry(self):
        for status in (states.PENDING, states.STARTED, "PROGRESS", states.RETRY):
            with self.subTest(status=status):
                running = self.own(status=status)
                response = self.client.post(f"/api/jobs/{running.task_id}/retry/")
                self.assertEqual(response.status_code, 409, response.content)
                self.assertIn(f"is {status}, not finished: a retry would run it a second time", response.json()["detail"])
                self.assertFalse(JobRecord.objects.filter(retry_of=running.pk).exists())
                page = self.client.get(reverse("jobs:detail", args=[running.task_id])).content.decode()
                self.assertNotIn(reverse("jobs:retry", args=[running.task_id]), page)
                refused = self.client.post(reverse("jobs:retry", args=[running.task_id]), follow=True)
                self.assertContains(refused, "Not retried: Job")
        self.assertFalse(JobAction.objects.filter(kind=JobAction.Kind.RETRY).exists())

    def test_cancel_revokes_a_queued_job_and_says_when_it_already_ended(self):
        queued = self.own()
        response = self.client.post(f"/api/jobs/{queued.task_id}/cancel/")
        self.assertEqual((response.status_code, response.json()["status"]), (200, "REVOKED"))
        again = self.client.post(f"/api/jobs/{queued.task_id}/cancel/")
        self.assertEqual(again.status_code, 409)
        self.assertIn("already ended (REVOKED)", again.json()["detail"])

    def test_anyone_elses_job_needs_the_permission(self):
        bobs = self.own(user=User.objects.create_user("bob"), status=states.FAILURE)
        self.assertEqual(self.client.post(f"/api/jobs/{bobs.task_id}/retry/").status_code, 404)  # not even seen
        grant(self.user, "django_celery_results.view_taskresult")
        for action, permission in (("retry", "jobs.retry_job"), ("cancel", "jobs.cancel_job")):
            with self.subTest(action=action):
                refused = self.client.post(f"/api/jobs/{bobs.task_id}/{action}/")
                self.assertEqual(refused.status_code, 403)
                self.assertIn(f"'Can {action} jobs'", refused.json()["detail"])
                grant(self.user, permission)
        with self.captureOnCommitCallbacks():
            self.assertEqual(self.client.post(f"/api/jobs/{bobs.task_id}/retry/").status_code, 202)
        self.assertEqual(self.client.post(f"/api/jobs/{uuid.uuid4()}/cancel/").status_code, 404)


class JobListTests(ApiTestCase):
    def test_lists_only_my_jobs_newest_first_with_filters_and_pages(self):

        bob = User.objects.create_user("bob")
        with self.captureOnCommitCallbacks():
            mine = [self.post_job({"task": "testapp.add", "args": [n, n]}).json()["id"] for n in range(3)]
            self.post_job({"task": "testapp.say_hello", "args": ["Ada"]})
        JobRecord.objects.create(result=TaskResult.objects.create(task_id="bobs", task_name="testapp.add"), launched_by=bob)

        body = self.get("/api/jobs/?task=testapp.add").json()
        self.assertEqual([job["id"] for job in body["items"]], mine[::-1])
        self.assertIsNone(body["next"])
        self.assertEqual(len(self.get("/api/jobs/").json()["items"]), 4)
        self.assertEqual(self.get("/api/jobs/?status=SUCCESS").json()["items"], [])

        with mock.patch.object(launching_selectors, "PAGE_SIZE", 2):
            first = self.get("/api/jobs/").json()
            self.assertEqual(first["next"], "http://testserver/api/jobs/?page=2")
            second = self.get(first["next"]).json()
        self.assertEqual((len(first["items"]), len(second["items"]), second["next"]), (2, 2, None))

    def test_unknown_status_is_a_clear_error(self):
        response = self.get("/api/jobs/?status=DONE")
        self.assertEqual(response.status_code, 422)
        self.assertIn("Unknown status 'DONE'. Use one of: PENDING, STARTED, PROGRESS", response.json()["detail"])


class OpenApiTests(TestCase):
    def test_schema_documents_every_endpoint(self):
        paths = self.client.get("/api/openapi.json").json()["paths"]
        self.assertEqual({path for path in paths if path.startswith("/api/jobs/")},
                         {"/api/jobs/", "/api/jobs/catalog/", "/api/jobs/{job_id}/", "/api/jobs/{job_id}/retry/",
                          "/api/jobs/{job_id}/cancel/"})
        self.assertEqual(self.client.get("/api/docs").status_code, 200)


class CatalogEndpointTests(ApiTestCase):
    def test_lists_launchable_jobs_with_their_argument_schema(self):
        entries = {entry["name"]: entry for entry in self.get("/api/jobs/catalog/").json()}
        self.assertLessEqual({"testapp.add", "testapp.countdown", "testapp.say_hello"}, set(entries))
        self.assertNotIn("testapp.purge", entries)  # staff only
        self.assertEqual(entries["testapp.add"]["description"], "Add two integers.")
        self.assertEqual(entries["testapp.say_hello"]["arguments"]["properties"]["name"]["type"], "string")
