from celery import states
from django.test import TestCase
from django_celery_results.models import TaskResult

from jobs.services import job_launch
from site_config import celery_app

TASK_ID = "0b5b1c9e-8f0e-4c36-9d2c-5d7f1d0e8a01"


class UpsertBackendTests(TestCase):
    def setUp(self):
        self.backend = celery_app.backend

    def test_is_the_configured_result_backend(self):
        self.assertEqual(type(self.backend).__name__, "UpsertDatabaseBackend")

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
            launched = job_launch(name="jobs.add", args=[1, 2])
        self.backend.store_result(launched.task_id, 3, states.SUCCESS)
        self.assertEqual(TaskResult.objects.count(), 1)
        record = TaskResult.objects.get()
        self.assertEqual((record.status, record.date_created), (states.SUCCESS, launched.date_created))

    def test_failure_stores_the_exception(self):
        self.backend.store_result(TASK_ID, ValueError("bad row 7"), states.FAILURE)
        record = TaskResult.objects.get(task_id=TASK_ID)
        self.assertEqual(record.status, states.FAILURE)
        self.assertIn("bad row 7", record.result)
