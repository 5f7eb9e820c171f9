from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

from celery import current_app as celery_app
from celery import states
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.exceptions import InvalidArguments
from jobs.launching.services import job_launch
from jobs.models import StoredTaskResult, Worker
from jobs.records.selectors import job_outcome
from jobs.results.fixups import TaskAsRequestWorkerFixup
from jobs.results.managers import JobSettled, run_lease

TASK_ID = "0b5b1c9e-8f0e-4c36-9d2c-5d7f1d0e8a01"


class ReadReplicaRouter:
    """A primary/replica setup's router: reads from a replica, writes to the primary."""

    def db_for_read(self, model, **hints):
        return "replica"

    def db_for_write(self, model, **hints):
        return "default"


class ResultsDatabaseRouter:
    """Results in a database of their own, by django-celery-results' app label; the rest elsewhere."""

    def db_for_read(self, model, **hints):
        return "default" if model._meta.app_label == "django_celery_results" else "elsewhere"

    db_for_write = db_for_read


class UpsertBackendTests(TestCase):
    def setUp(self):
        self.backend = celery_app.backend

    def test_is_the_configured_result_backend(self):
        from jobs.results import DatabaseBackend

        self.assertIsInstance(self.backend, DatabaseBackend)

    @override_settings(DATABASE_ROUTERS=[f"{__name__}.ReadReplicaRouter"])
    def test_results_are_written_to_the_routers_write_database(self):
        """Not to the read database, which is a read-only replica (or, here, not there at all)."""
        self.backend.store_result(TASK_ID, 8, states.SUCCESS)
        self.assertEqual(TaskResult.objects.using("default").get(task_id=TASK_ID).status, states.SUCCESS)

    @override_settings(DATABASE_ROUTERS=[f"{__name__}.ResultsDatabaseRouter"])
    def test_results_are_routed_like_django_celery_results_own_models(self):
        from jobs.models import StoredTaskResult

        self.backend.store_result(TASK_ID, 8, states.SUCCESS)
        self.assertEqual(StoredTaskResult.objects.get(task_id=TASK_ID).status, states.SUCCESS)

    def test_each_state_change_updates_one_row_and_keeps_the_start_time(self):
        self.backend.store_result(TASK_ID, {"pid": 1}, states.STARTED)
        started = TaskResult.objects.get(task_id=TASK_ID)
        self.assertIsNotNone(started.date_started)

        self.backend.store_result(TASK_ID, 8, states.SUCCESS)
        done = TaskResult.objects.get(task_id=TASK_ID)
        self.assertEqual((done.status, done.result), (states.SUCCESS, "8"))
        self.assertEqual(done.date_started, started.date_started)
        self.assertEqual(done.date_created, started.date_created)
        self.assertGreaterEqual(done.date_done, started.date_done)
        self.assertEqual(self.backend.get_task_meta(TASK_ID)["result"], 8)

    def test_updates_the_pending_record_written_at_launch(self):
        with self.captureOnCommitCallbacks():
            launched = job_launch(name="testapp.add", args=[1, 2])
        self.backend.store_result(launched.task_id, 3, states.SUCCESS)
        self.assertEqual(TaskResult.objects.count(), 1)
        record = TaskResult.objects.get()
        self.assertEqual((record.status, record.date_created), (states.SUCCESS, launched.date_created))

    def test_failure_stores_the_exception(self):
        self.backend.store_result(TASK_ID, ValueError("bad row 7"), states.FAILURE)
        record = TaskResult.objects.get(task_id=TASK_ID)
        self.assertEqual(record.status, states.FAILURE)
        self.assertIn("bad row 7", record.result)

    def test_a_start_over_a_run_that_may_still_be_going_on_is_refused(self):
        """One run at a time: a second start is refused while the first began less than three
        heartbeats ago, or while its worker's last heartbeat (as recent) lists it; not after."""
        def start(worker: str):
            StoredTaskResult.objects.store_result("application/json", "utf-8", TASK_ID, None, states.STARTED,
                                                  worker=worker, date_started=True)

        start("a@host")
        with self.assertRaises(JobSettled) as refused:
            start("b@host")
        self.assertEqual((refused.exception.status, refused.exception.worker), ("STARTED", "a@host"))

        long_ago = timezone.now() - run_lease() - timedelta(seconds=1)
        TaskResult.objects.filter(task_id=TASK_ID).update(date_started=long_ago)
        Worker.objects.create(hostname="a@host", started_at=long_ago, last_heartbeat=timezone.now(),
                              running=[{"id": TASK_ID, "name": "testapp.add"}])
        with self.assertRaises(JobSettled):  # still running, its worker says
            start("b@host")
        Worker.objects.filter(hostname="a@host").update(last_heartbeat=long_ago)  # silent: lost
        start("b@host")
        self.assertEqual(TaskResult.objects.get(task_id=TASK_ID).worker, "b@host")

    def test_a_job_refused_for_its_arguments_raises_the_engines_error_from_get(self):
        """.get() on a job the worker refused rebuilds InvalidArguments with its errors, not a bare
        Exception; the pages still say the message."""
        errors = [{"field": "x", "message": "Input should be a valid integer"}]
        self.backend.store_result(TASK_ID, InvalidArguments("testapp.add", errors), states.FAILURE)
        with self.assertRaises(InvalidArguments) as raised:
            celery_app.AsyncResult(TASK_ID).get(timeout=1)
        self.assertEqual((raised.exception.job_name, raised.exception.errors), ("testapp.add", errors))
        self.assertEqual(str(raised.exception), "Invalid arguments for testapp.add: x: Input should be a valid integer")
        self.assertEqual(job_outcome(TaskResult.objects.get(task_id=TASK_ID))[1],
                         "InvalidArguments: Invalid arguments for testapp.add: x: Input should be a valid integer")


class WorkerRoundTripTests(TransactionTestCase):
    """A task's database round trips on a worker, outside any transaction as there."""

    def test_the_started_write_does_not_wait_for_the_disk_and_the_outcome_does(self):
        with CaptureQueriesContext(connection) as queries:
            celery_app.backend.store_result(TASK_ID, {"pid": 1}, states.STARTED)
            self.assertEqual(TaskResult.objects.get(task_id=TASK_ID).status, states.STARTED)  # seen at once
            celery_app.backend.store_result(TASK_ID, 8, states.SUCCESS)
        started, _, outcome = (query["sql"] for query in queries.captured_queries)
        self.assertTrue(started.startswith("SET LOCAL synchronous_commit TO OFF; WITH prior AS"), started)
        self.assertNotIn("synchronous_commit", outcome)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")  # for that statement only
            self.assertEqual(cursor.fetchone()[0], "on")

    def test_a_task_that_stores_started_first_skips_the_health_check_before_it(self):
        fixup = TaskAsRequestWorkerFixup(celery_app)
        fixup.worker = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")
        task = find_job("testapp.add")
        connection.ensure_connection()
        fixup.on_task_prerun(sender=task)
        self.assertTrue(connection.health_check_done)
        with mock.patch.object(task, "ignore_result", True):  # nothing stored: its own query checks first
            fixup.on_task_prerun(sender=task)
        self.assertFalse(connection.health_check_done)


class RetentionTests(TestCase):
    def test_cleanup_deletes_only_expired_results_in_batches(self):
        """beat's daily celery.backend_cleanup deletes results older than RESULT_RETENTION_DAYS."""
        from datetime import timedelta
        from unittest import mock

        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from jobs.models import StoredTaskResult

        now = timezone.now()
        for n in range(7):
            TaskResult.objects.create(task_id=f"old-{n}", status=states.SUCCESS)
        TaskResult.objects.filter(task_id__startswith="old-").update(date_done=now - timedelta(days=31))
        TaskResult.objects.create(task_id="recent", status=states.SUCCESS)
        TaskResult.objects.create(task_id="29-days", status=states.SUCCESS)
        TaskResult.objects.filter(task_id="29-days").update(date_done=now - timedelta(days=29))

        self.assertEqual(celery_app.backend.expires, 30 * 24 * 3600)
        with mock.patch.object(type(StoredTaskResult.objects), "delete_batch_size", 3), \
                CaptureQueriesContext(connection) as queries:
            celery_app.backend.cleanup()
        deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "django_celery_results_taskresult"')]
        self.assertEqual(len(deletes), 3)  # batches of 3, 3 and 1
        self.assertEqual(set(TaskResult.objects.values_list("task_id", flat=True)), {"recent", "29-days"})
