"""A job's life recorded beside TaskResult; retry and cancel with permissions and an audit trail."""
import json
import uuid
from unittest import mock

from celery import current_app as celery_app
from celery import states
from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.exceptions import JobNotCancellable
from jobs.launching.services import job_cancel, job_launch, job_retry, stale_jobs_fail
from jobs.models import JobAction, JobRecord
from jobs.records import receivers
from tests.users import grant


class JobRecordTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice")

    def launch(self, **kwargs) -> TaskResult:
        with self.captureOnCommitCallbacks():
            return job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice, **kwargs)

    def test_launch_records_who_from_where_with_what_on_which_queue(self):
        record = self.launch(origin=JobRecord.Origin.PAGE)
        job = record.record
        self.assertEqual(record.status, states.PENDING)
        self.assertEqual((job.launched_by, job.origin, job.queue), (self.alice, "page", "default"))
        self.assertEqual(job.arguments, {"args": [], "kwargs": {"x": 1, "y": 2}})

    def test_jobs_sent_from_code_or_beat_are_recorded_when_published(self):
        """before_task_publish writes the PENDING row, whoever sends the message."""
        with mock.patch("kombu.messaging.Producer.publish"):
            sent = find_job("testapp.add").apply_async(args=[5, 6])
            scheduled = find_job("testapp.add").apply_async(kwargs={"x": 1, "y": 1}, headers={"periodic_task_name": "nightly"})
        record = TaskResult.objects.get(task_id=sent.id)
        self.assertEqual((record.status, record.record.origin, record.record.queue), ("PENDING", "code", "default"))
        self.assertEqual(record.record.arguments, {"args": [5, 6], "kwargs": {}})
        scheduled_record = TaskResult.objects.get(task_id=scheduled.id)
        self.assertEqual((scheduled_record.record.origin, scheduled_record.periodic_task_name), ("schedule", "nightly"))

    def test_job_ids_grow_with_time_however_the_job_is_sent(self):
        """So the results table's task_id index is written at its end (bench_throughput --rows)."""
        with mock.patch("kombu.messaging.Producer.publish"):
            ids = [self.launch().task_id, find_job("testapp.add").apply_async(args=[5, 6]).id,
                   find_job("testapp.add").delay(1, 1).id, self.launch().task_id]
            chosen = find_job("testapp.add").apply_async(args=[5, 6], task_id="my-own-id").id
        self.assertEqual(ids, sorted(ids))
        self.assertEqual({uuid.UUID(task_id).version for task_id in ids}, {7})
        self.assertEqual(chosen, "my-own-id")
        self.assertTrue(TaskResult.objects.filter(task_id="my-own-id").exists())

    def test_each_state_transition_is_stored_on_the_same_row(self):
        record = self.launch()
        backend = celery_app.backend
        seen = []
        for state, value in ((states.STARTED, {"pid": 1}), ("PROGRESS", {"current": 1, "total": 2, "message": ""}),
                             (states.RETRY, ValueError("flaky")), (states.STARTED, {"pid": 2}), (states.SUCCESS, 3)):
            backend.store_result(record.task_id, value, state)
            seen.append(TaskResult.objects.get(task_id=record.task_id).status)
        self.assertEqual(seen, ["STARTED", "PROGRESS", "RETRY", "STARTED", "SUCCESS"])
        self.assertEqual(TaskResult.objects.count(), 1)
        self.assertEqual(JobRecord.objects.get().arguments["kwargs"], {"x": 1, "y": 2})

    def test_a_retry_counts_the_attempt_and_keeps_the_error(self):
        record = self.launch()
        receivers.job_retried(sender=None, request=mock.Mock(id=record.task_id), reason=ValueError("503 from API"))
        job = JobRecord.objects.get()
        self.assertEqual((job.attempts, job.last_error), (2, "503 from API"))


class RetryAndCancelTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice")
        self.operator = grant(User.objects.create_user("ops", is_staff=True), "jobs.retry_job", "jobs.cancel_job",
                              "django_celery_results.view_taskresult")
        with self.captureOnCommitCallbacks():
            self.record = job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice)

    def test_retry_links_both_ways_and_is_audited(self):
        TaskResult.objects.filter(pk=self.record.pk).update(status=states.FAILURE)
        with self.captureOnCommitCallbacks():
            retried = job_retry(result=self.record, user=self.operator)
        self.assertEqual(retried.record.retry_of, self.record.record)
        self.assertEqual(list(self.record.record.retried_as.all()), [retried.record])
        self.assertEqual((retried.record.origin, retried.record.launched_by), ("retry", self.operator))
        self.assertEqual(retried.record.arguments, self.record.record.arguments)
        action = JobAction.objects.get()
        self.assertEqual((action.kind, action.actor, action.detail), ("retry", self.operator, f"as {retried.task_id}"))

    def test_cancel_a_queued_job(self):
        with mock.patch.object(celery_app.control, "revoke") as revoke:
            job_cancel(result=self.record, user=self.operator)
        revoke.assert_called_once_with(self.record.task_id, terminate=False, signal="SIGTERM")
        self.record.refresh_from_db()
        self.assertEqual(self.record.status, states.REVOKED)
        self.assertEqual(self.record.record.cancelled_by, self.operator)
        self.assertEqual(JobAction.objects.get().detail, "dequeued")

    def test_cancel_a_running_job_terminates_it(self):
        TaskResult.objects.filter(pk=self.record.pk).update(status=states.STARTED)
        self.record.refresh_from_db()
        with mock.patch.object(celery_app.control, "revoke") as revoke:
            job_cancel(result=self.record, user=self.operator)
        revoke.assert_called_once_with(self.record.task_id, terminate=True, signal="SIGTERM")
        self.assertEqual(JobAction.objects.get().detail, "stopped while running")

    def test_retrying_arguments_that_no_longer_fit_is_a_clear_error(self):
        TaskResult.objects.filter(pk=self.record.pk).update(status=states.FAILURE)
        JobRecord.objects.filter(pk=self.record.record.pk).update(arguments={"args": ["one", 2], "kwargs": {}})
        self.client.force_login(self.operator)
        response = self.client.post(f"/jobs/{self.record.task_id}/retry/", follow=True)
        self.assertContains(response, "Not retried: Invalid arguments for testapp.add: x: Input should be a valid integer")
        self.assertFalse(JobAction.objects.exists())

    def test_a_finished_job_cannot_be_cancelled(self):
        TaskResult.objects.filter(pk=self.record.pk).update(status=states.SUCCESS)
        self.record.refresh_from_db()
        with self.assertRaisesMessage(JobNotCancellable, "already ended (SUCCESS)"):
            job_cancel(result=self.record, user=self.operator)

    def test_a_worker_that_missed_the_revoke_skips_a_cancelled_job(self):
        """Marking it STARTED finds the record REVOKED: the job does not run, the record stays."""
        from celery.app.trace import build_tracer

        with mock.patch.object(celery_app.control, "revoke"):
            job_cancel(result=self.record, user=self.operator)
        add = find_job("testapp.add")
        trace = build_tracer(add.name, add, eager=False, propagate=True, app=celery_app)  # the worker's tracer
        with mock.patch.object(add, "run") as run:
            trace(self.record.task_id, [], {"x": 1, "y": 2}, {"id": self.record.task_id, "delivery_info": {}})
        self.assertEqual(run.call_count, 0)
        self.record.refresh_from_db()
        self.assertEqual(self.record.status, states.REVOKED)
        self.assertIn("cancelled by ops", self.record.result)


class RetryIsALaunchTests(TestCase):
    """A retry goes through the launch rules: the rate, restricted jobs, the arguments."""

    def setUp(self):
        self.alice = grant(User.objects.create_user("alice"), "jobs.retry_job")
        self.client.force_login(self.alice)

    def launch(self, name, **kwargs):
        with self.captureOnCommitCallbacks():
            return job_launch(name=name, launched_by=self.alice, **kwargs)

    @override_settings(JOBS_LAUNCH_RATE="2/m")
    def test_retries_count_against_the_launch_rate(self):
        first = self.launch("testapp.add", args=[1, 2])
        TaskResult.objects.filter(pk=first.pk).update(status=states.FAILURE)
        with self.captureOnCommitCallbacks():
            responses = [self.client.post(f"/jobs/{first.task_id}/retry/", follow=True) for _ in range(3)]
        self.assertEqual(JobRecord.objects.filter(retry_of__isnull=False).count(), 2)
        self.assertContains(responses[-1], "Not retried: Too many jobs started")

    def test_a_restricted_job_launched_on_ones_behalf_cannot_be_retried_without_the_permission(self):
        purge = self.launch("testapp.purge", args=[3], system=True)  # as an upload launches its import
        TaskResult.objects.filter(pk=purge.pk).update(status=states.FAILURE)
        response = self.client.post(f"/jobs/{purge.task_id}/retry/", follow=True)
        self.assertContains(response, "Not retried: testapp.purge is restricted")
        self.assertFalse(JobRecord.objects.filter(retry_of__isnull=False).exists())


class PermissionTests(TestCase):
    """Whoever launched a job may retry and cancel it; anyone else's needs the permissions, on the
    pages and in the admin."""

    def setUp(self):
        self.alice = User.objects.create_user("alice")
        with self.captureOnCommitCallbacks():
            self.record = job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice)

    def test_someone_elses_job_needs_the_permissions_and_the_page_says_so(self):
        viewer = grant(User.objects.create_user("viewer"), "django_celery_results.view_taskresult")
        self.client.force_login(viewer)
        page = self.client.get(f"/jobs/{self.record.task_id}/")
        self.assertNotContains(page, "Retry</button>")
        self.assertNotContains(page, "Cancel…")
        self.assertContains(page, "Whoever launched a job may retry or cancel it")
        self.assertEqual(self.client.post(f"/jobs/{self.record.task_id}/retry/").status_code, 403)
        self.assertEqual(self.client.post(f"/jobs/{self.record.task_id}/cancel/").status_code, 403)
        self.assertFalse(JobAction.objects.exists())

    def test_the_owner_may_retry_and_cancel_their_own_job(self):
        self.client.force_login(self.alice)
        self._retry_and_cancel()

    def test_pages_allow_with_permission(self):
        self.client.force_login(grant(User.objects.create_user("ops"), "jobs.retry_job", "jobs.cancel_job",
                                      "django_celery_results.view_taskresult"))
        self._retry_and_cancel()

    def _retry_and_cancel(self):
        page = self.client.get(f"/jobs/{self.record.task_id}/")
        self.assertNotContains(page, "Retry</button>")  # queued: a retry would run it twice
        self.assertContains(page, "Cancel…")
        confirmation = self.client.get(f"/jobs/{self.record.task_id}/cancel/")
        self.assertContains(confirmation, "The job is queued: it will not start.")
        with mock.patch.object(celery_app.control, "revoke"):
            self.client.post(f"/jobs/{self.record.task_id}/cancel/")
        self.assertEqual(TaskResult.objects.get(pk=self.record.pk).status, states.REVOKED)
        self.assertContains(self.client.get(f"/jobs/{self.record.task_id}/"), "Retry</button>")
        with self.captureOnCommitCallbacks():
            response = self.client.post(f"/jobs/{self.record.task_id}/retry/")
        retried = JobRecord.objects.get(retry_of=self.record.record)
        self.assertRedirects(response, f"/jobs/{retried.result.task_id}/", fetch_redirect_response=False)
        self.assertEqual(list(JobAction.objects.values_list("kind", flat=True)), ["retry", "cancel"])

    def test_admin_actions_need_the_permissions(self):
        viewer = grant(User.objects.create_user("viewer", is_staff=True), "django_celery_results.view_taskresult")
        self.client.force_login(viewer)
        changelist = self.client.get("/admin/django_celery_results/taskresult/")
        self.assertNotContains(changelist, "retry_jobs")
        self.client.post("/admin/django_celery_results/taskresult/",
                         {"action": "retry_jobs", "_selected_action": [self.record.pk], "confirm": "yes"})
        self.assertFalse(JobRecord.objects.filter(retry_of__isnull=False).exists())
        self.assertEqual(self.client.post(f"/admin/django_celery_results/taskresult/{self.record.pk}/retry/").status_code, 403)

        self.client.force_login(grant(viewer, "jobs.retry_job", "jobs.cancel_job"))
        confirm = self.client.post("/admin/django_celery_results/taskresult/",
                                   {"action": "cancel_jobs", "_selected_action": [self.record.pk]})
        self.assertContains(confirm, "Cancel 1 job?")
        self.assertContains(confirm, "Yes, cancel 1 job")
        self.assertEqual(TaskResult.objects.get(pk=self.record.pk).status, states.PENDING)
        with mock.patch.object(celery_app.control, "revoke"):
            self.client.post("/admin/django_celery_results/taskresult/",
                             {"action": "cancel_jobs", "_selected_action": [self.record.pk], "confirm": "yes"})
        self.assertEqual(TaskResult.objects.get(pk=self.record.pk).status, states.REVOKED)
        with self.captureOnCommitCallbacks():
            self.client.post(f"/admin/django_celery_results/taskresult/{self.record.pk}/retry/")
        self.assertTrue(JobRecord.objects.filter(retry_of=self.record.record).exists())
        self.assertEqual(sorted(JobAction.objects.values_list("kind", flat=True)), ["cancel", "retry"])


class ResultsAdminTests(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        alice = User.objects.create_user("alice")
        with self.captureOnCommitCallbacks():
            self.pending = job_launch(name="testapp.add", args=[1, 2], launched_by=alice)
            self.failed = job_launch(name="testapp.say_hello", args=["Ada"], launched_by=alice)
        TaskResult.objects.filter(pk=self.failed.pk).update(
            status=states.FAILURE, worker="celery@w1",
            result=json.dumps({"exc_type": "ValueError", "exc_message": ["boom"]}),
        )

    def changelist(self, **query):
        return self.client.get("/admin/django_celery_results/taskresult/", query)

    def test_queued_jobs_are_listed_with_their_launcher_and_queue(self):
        response = self.changelist()
        self.assertContains(response, self.pending.task_id)
        self.assertContains(response, "alice")
        self.assertEqual(response.context["cl"].result_count, 2)

    def test_filters_and_exact_searches(self):
        for query, expected in (
            ({"status": "FAILURE"}, [self.failed]), ({"task_name": "testapp.add"}, [self.pending]),
            ({"record__queue": "default"}, [self.failed, self.pending]), ({"worker": "celery@w1"}, [self.failed]),
            ({"q": self.pending.task_id}, [self.pending]), ({"q": "testapp.say_hello"}, [self.failed]),
            ({"q": "jobs.say"}, []),
        ):
            with self.subTest(query=query):
                self.assertEqual(list(self.changelist(**query).context["cl"].result_list), expected)

    def test_worker_filter_lists_recent_workers(self):
        self.assertContains(self.changelist(), "?worker=celery%40w1")

    def test_detail_page_shows_arguments_error_timings_and_origin(self):
        page = self.client.get(f"/admin/django_celery_results/taskresult/{self.failed.pk}/change/")
        for text in ("ValueError: boom", "{&#x27;args&#x27;: [], &#x27;kwargs&#x27;: {&#x27;name&#x27;: &#x27;Ada&#x27;}}",
                     "<div class=\"readonly\">Code</div>", "Queued → started → done", "Retry</button>"):
            self.assertContains(page, text)
        queued = self.client.get(f"/admin/django_celery_results/taskresult/{self.pending.pk}/change/")
        self.assertNotContains(queued, "Retry</button>")  # a retry would run it twice
        self.assertContains(queued, "Not retryable")


class ResultsAdminQueryTests(TestCase):
    """The changelist stays fast as the table grows: no full COUNT(*), no table-wide DISTINCT."""

    def test_changelist_and_filters_neither_count_nor_scan_the_whole_table(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        for query in ("", "?status=FAILURE", "?task_name=jobs.add", "?record__queue=default", "?q=jobs.add", "?p=1"):
            with self.subTest(query=query), CaptureQueriesContext(connection) as queries:
                self.assertEqual(self.client.get(f"/admin/django_celery_results/taskresult/{query}").status_code, 200)
            results = [q["sql"] for q in queries if "django_celery_results_taskresult" in q["sql"]]
            self.assertTrue(results)
            for sql in results:
                self.assertNotIn("DISTINCT", sql)
                if "COUNT(" in sql:
                    self.assertIn("LIMIT 10001", sql)  # capped, then the planner's estimate


class StaleJobTests(TestCase):
    def test_jobs_started_longer_ago_than_the_time_limit_are_marked_failed(self):
        from datetime import timedelta

        from django.utils import timezone
        from django_celery_beat.models import PeriodicTask

        long_ago = timezone.now() - timedelta(seconds=celery_app.conf.task_time_limit) - timedelta(minutes=6)
        for task_id, status, started in (("lost", "STARTED", long_ago), ("lost-progress", "PROGRESS", long_ago),
                                         ("running", "STARTED", timezone.now()), ("done", "SUCCESS", long_ago)):
            TaskResult.objects.create(task_id=task_id, status=status, date_started=started)
        self.assertEqual(stale_jobs_fail(), 2)
        statuses = dict(TaskResult.objects.values_list("task_id", "status"))
        self.assertEqual(statuses, {"lost": "FAILURE", "lost-progress": "FAILURE", "running": "STARTED", "done": "SUCCESS"})
        self.assertIn("the worker running it was lost", TaskResult.objects.get(task_id="lost").result)
        self.assertEqual(PeriodicTask.objects.get(task="jobs.stale_jobs_fail").interval.every, 5)


class ResultsAdminConsistencyTests(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        self.alice = User.objects.create_user("alice")
        with self.captureOnCommitCallbacks():
            self.result = job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice)

    def test_a_queued_job_shows_no_done_time(self):
        changelist = self.client.get("/admin/django_celery_results/taskresult/")
        self.assertContains(changelist, '<td class="field-done">-</td>', html=True)

    def test_the_audit_trail_names_jobs_by_their_ids_and_bulk_retry_skips_retried_jobs(self):
        TaskResult.objects.filter(pk=self.result.pk).update(status="FAILURE")
        action = {"action": "retry_jobs", "_selected_action": [self.result.pk], "confirm": "yes"}
        with self.captureOnCommitCallbacks():
            self.client.post("/admin/django_celery_results/taskresult/", action)
            response = self.client.post("/admin/django_celery_results/taskresult/", action, follow=True)
        self.assertEqual(JobRecord.objects.filter(retry_of=self.result.record).count(), 1)
        self.assertContains(response, "Retried 0 jobs. Skipped 1: retried already.")
        page = self.client.get(f"/admin/django_celery_results/taskresult/{self.result.pk}/change/")
        self.assertContains(page, f"Retry of job {self.result.task_id} by root")



class BulkActionsByFilterTests(TestCase):
    """Retry and cancel every job the admin's filter matches ("select all"), not just the page's rows."""

    def setUp(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        with self.captureOnCommitCallbacks():
            self.adds = [job_launch(name="testapp.add", args=[i, 1]) for i in range(4)]
            self.hello = job_launch(name="testapp.say_hello", args=["Ada"])

    def act(self, query: str, action: str, **extra):
        """Post as the admin page does after "Select all": the page's rows ticked, select_across set."""
        page = [self.adds[0].pk]  # the filter matches more rows than are ticked
        with self.captureOnCommitCallbacks():
            return self.client.post(f"/admin/django_celery_results/taskresult/?{query}", {
                "action": action, "select_across": "1", "index": "0", "_selected_action": page, **extra}, follow=True)

    def test_retry_all_failed_jobs_of_the_filter_skipping_those_retried_already(self):
        TaskResult.objects.filter(pk__in=[r.pk for r in self.adds[:3]] + [self.hello.pk]).update(status=states.FAILURE)
        TaskResult.objects.filter(pk=self.adds[3].pk).update(status=states.SUCCESS)
        with self.captureOnCommitCallbacks():
            job_retry(result=self.adds[0], user=User.objects.get())
        TaskResult.objects.filter(task_name="testapp.add", status=states.PENDING).update(status=states.FAILURE)

        confirm = self.act("status=FAILURE&task_name=testapp.add", "retry_jobs")
        self.assertContains(confirm, "Retry 3 jobs?")  # adds[1], adds[2] and the retry of adds[0]
        self.assertContains(confirm, "1 skipped: retried already")
        self.assertEqual(JobRecord.objects.filter(origin="retry").count(), 1)

        done = self.act("status=FAILURE&task_name=testapp.add", "retry_jobs", confirm="yes")
        self.assertContains(done, "Retried 3 jobs. Skipped 1: retried already.")
        retried = set(JobRecord.objects.filter(origin="retry").values_list("retry_of__result__task_name", flat=True))
        self.assertEqual(retried, {"testapp.add"})
        self.assertEqual(JobAction.objects.filter(kind="retry").count(), 4)
        self.assertFalse(JobRecord.objects.filter(retry_of__result=self.hello).exists())

    def test_cancel_every_queued_job_of_one_job(self):
        TaskResult.objects.filter(pk=self.adds[3].pk).update(status=states.SUCCESS)
        confirm = self.act("status=PENDING&task_name=testapp.add", "cancel_jobs")
        self.assertContains(confirm, "Cancel 3 jobs?")
        self.assertEqual(TaskResult.objects.filter(status=states.REVOKED).count(), 0)

        done = self.act("status=PENDING&task_name=testapp.add", "cancel_jobs", confirm="yes")
        self.assertContains(done, "Cancelled 3 jobs.")
        statuses = dict(TaskResult.objects.values_list("task_id", "status"))
        self.assertEqual([statuses[r.task_id] for r in self.adds], [states.REVOKED] * 3 + [states.SUCCESS])
        self.assertEqual(statuses[self.hello.task_id], states.PENDING)
        self.assertEqual(JobAction.objects.filter(kind="cancel", actor__username="root").count(), 3)


class SearchTests(TestCase):
    """The results admin finds what an operator pastes."""

    def setUp(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        with self.captureOnCommitCallbacks():
            self.hello = job_launch(name="testapp.say_hello", args=["Grace Hopper"])
            self.add = job_launch(name="testapp.add", args=[40, 2])
        error = {"exc_type": "ConnectionError", "exc_message": ["smtp.example.org refused"]}
        TaskResult.objects.filter(pk=self.add.pk).update(status=states.FAILURE, result=json.dumps(error))

    def found(self, term: str) -> list[str]:
        response = self.client.get("/admin/django_celery_results/taskresult/", {"q": term})
        return [result.task_id for result in response.context["cl"].result_list]

    def test_an_id_prefix_as_logs_show_it(self):
        # Time-ordered ids: the first 8 characters name the minute, so every job of it matches.
        self.assertEqual(set(self.found(self.add.task_id[:8])), {self.add.task_id, self.hello.task_id})
        self.assertEqual(self.found(self.add.task_id[:18]), [self.add.task_id])
        self.assertEqual(self.found(self.add.task_id.upper()), [self.add.task_id])
        self.assertEqual(self.found("ffffffff"), [])

    def test_text_in_arguments_and_in_errors_in_any_case(self):
        self.assertEqual(self.found("grace hop"), [self.hello.task_id])
        self.assertEqual(self.found("SMTP.example"), [self.add.task_id])
        self.assertEqual(self.found("refused"), [self.add.task_id])

    def test_an_error_is_searched_only_while_the_job_is_failed(self):
        TaskResult.objects.filter(pk=self.add.pk).update(status=states.SUCCESS)
        self.assertEqual(self.found("refused"), [])

    def test_a_job_name_exactly_and_too_short_a_text_finds_nothing(self):
        self.assertEqual(self.found("testapp.add"), [self.add.task_id])
        self.assertEqual(self.found("zz"), [])
