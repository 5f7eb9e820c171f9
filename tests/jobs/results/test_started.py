"""A run marked STARTED once it has lasted JOBS_STARTED_AFTER_SECONDS (jobs/results/started.py), on the
real database: the mark is written by a thread of its own, on its own connection, so these commit."""
import json
import threading
import time

from celery import current_app as celery_app
from celery import states
from celery.app.task import Context
from django.db import connection
from django.test import TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from jobs.catalog import find_job, new_task_id
from jobs.records.services import job_records_create
from jobs.results.started import REDELIVERED_MARGIN
from jobs.testing.processes import wait_for

AFTER = 0.3


def pending(task_name: str = "testapp.add") -> str:
    """A job recorded PENDING, as its launch leaves it; its id."""
    task_id = new_task_id()
    job_records_create([{"task_id": task_id, "task_name": task_name, "args": [], "kwargs": {"x": 1, "y": 2},
                         "queue": "default", "periodic_task_name": None}])
    return task_id


def delivery(task_id: str, worker: str = "a@host", redelivered: bool = False, task_name: str = "testapp.add") -> Context:
    """The request a worker runs a delivery of the job's message with."""
    return Context(id=task_id, task=task_name, args=[], kwargs={"x": 1, "y": 2}, hostname=worker,
                   delivery_info={"exchange": "", "routing_key": "default", "redelivered": redelivered})


def start(request: Context) -> None:
    """What Celery's trace does as a run starts (track_started)."""
    celery_app.backend.store_result(request.id, {"pid": 1, "hostname": request.hostname}, states.STARTED,
                                    request=request)


@override_settings(JOBS_STARTED_AFTER_SECONDS=AFTER)
class StartedLaterTests(TransactionTestCase):
    def test_a_run_shorter_than_the_threshold_goes_from_pending_to_its_outcome_with_its_start(self):
        task_id = pending()
        request = delivery(task_id)
        with CaptureQueriesContext(connection) as queries:
            start(request)
        self.assertEqual([query["sql"].split()[0] for query in queries.captured_queries], ["SELECT"])  # no write
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, states.PENDING)
        celery_app.backend.store_result(task_id, 3, states.SUCCESS, request=request)
        time.sleep(AFTER + 0.3)  # past the mark's time: it was taken back
        done = TaskResult.objects.get(task_id=task_id)
        self.assertEqual((done.status, done.worker), (states.SUCCESS, "a@host"))
        self.assertEqual(done.date_started, request.job_started_at)
        self.assertLessEqual(done.date_started, done.date_done)

    def test_a_run_longer_than_the_threshold_is_marked_started_as_of_its_start(self):
        task_id = pending()
        request = delivery(task_id)
        began = time.monotonic()
        start(request)
        marked = wait_for(lambda: TaskResult.objects.filter(task_id=task_id, status=states.STARTED).first(),
                          timeout=5, interval=0.01, message="the mark")
        self.assertGreaterEqual(time.monotonic() - began, AFTER)
        self.assertEqual((marked.worker, marked.date_started), ("a@host", request.job_started_at))
        self.assertEqual(json.loads(marked.result), {"pid": 1, "hostname": "a@host"})
        celery_app.backend.store_result(task_id, 3, states.SUCCESS, request=request)
        done = TaskResult.objects.get(task_id=task_id)
        self.assertEqual((done.status, done.date_started), (states.SUCCESS, request.job_started_at))

    def test_progress_reported_before_the_threshold_carries_the_start_and_is_not_overwritten(self):
        task_id = pending()
        request = delivery(task_id)
        start(request)
        celery_app.backend.store_result(task_id, {"current": 1, "total": 2, "message": ""}, "PROGRESS", request=request)
        time.sleep(AFTER + 0.3)
        row = TaskResult.objects.get(task_id=task_id)
        self.assertEqual((row.status, row.date_started, row.worker), ("PROGRESS", request.job_started_at, "a@host"))

    def test_a_record_that_is_not_pending_takes_the_full_write_which_decides(self):
        for status in (states.REVOKED, states.SUCCESS):
            task_id = pending()
            TaskResult.objects.filter(task_id=task_id).update(status=status)
            request = delivery(task_id)
            start(request)
            self.assertEqual(request.job_settled, status)  # not run
        task_id = pending()
        TaskResult.objects.filter(task_id=task_id).update(status=states.RETRY)
        start(delivery(task_id))
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, states.STARTED)  # marked at once

    def test_a_message_delivered_again_waits_for_a_run_of_the_first_delivery_to_mark_itself(self):
        """RabbitMQ hands a message on when its worker's connection goes, while that worker may still
        run it, unmarked for its first AFTER seconds: the second delivery finds it marked, not PENDING,
        and is refused; without the wait it would have claimed the record and run beside it."""
        task_id = pending()
        first = delivery(task_id, worker="a@host")
        start(first)
        second = delivery(task_id, worker="b@host", redelivered=True)
        began = time.monotonic()
        start(second)
        self.assertEqual((getattr(second, "job_settled", None), getattr(second, "job_running_on", None)),
                         (states.STARTED, "a@host"))
        self.assertGreaterEqual(time.monotonic() - began, AFTER + REDELIVERED_MARGIN)

        task_id = pending()  # the first run ends before the second delivery looks
        first = delivery(task_id)
        start(first)
        second = delivery(task_id, worker="b@host", redelivered=True)
        looking = threading.Thread(target=lambda: (start(second), connection.close()))
        looking.start()
        celery_app.backend.store_result(task_id, 3, states.SUCCESS, request=first)
        looking.join()
        self.assertEqual(second.job_settled, states.SUCCESS)

        task_id = pending()  # no run of the first delivery: the second runs it, marked at its start
        second = delivery(task_id, worker="b@host", redelivered=True)
        start(second)
        self.assertFalse(hasattr(second, "job_settled"))
        self.assertEqual(TaskResult.objects.get(task_id=task_id).worker, "b@host")

    def test_jobs_whose_limits_or_keys_count_started_runs_are_marked_as_they_start(self):
        for name, marked_at_start in (("testapp.add", False), ("testapp.refresh", True),
                                      ("testapp.sync_account", False), ("testapp.import_for", True),
                                      ("testapp.fetch_politely", True)):
            self.assertEqual(find_job(name).marked_at_start, marked_at_start, name)
        task_id = pending("testapp.refresh")
        start(delivery(task_id, task_name="testapp.refresh"))
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, states.STARTED)

    @override_settings(JOBS_STARTED_AFTER_SECONDS=0)
    def test_a_threshold_of_0_marks_every_run_as_it_starts(self):
        task_id = pending()
        start(delivery(task_id))
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, states.STARTED)
