"""A job sent from code outside a transaction is recorded alongside its publish (jobs/records/alongside.py),
on the real database and the real broker (the tests' own virtual host): these commit."""
from unittest import mock, skipIf

from celery import current_app as celery_app
from celery import states
from django.db import connection, transaction
from django.tasks import task_backends
from django.test import TransactionTestCase, override_settings, tag
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from jobs.catalog import find_job, new_task_id
from jobs.exceptions import JobQueueUnavailable
from jobs.records import alongside
from tests.testapp.tasks import multiply

QUEUE = "alongside"  # of these tests alone: no test's worker takes these messages


def inserts_on_django_s_connection(queries: CaptureQueriesContext) -> int:
    return sum(query["sql"].lstrip().upper().startswith("INSERT") for query in queries.captured_queries)


@tag("integration")  # through PgBouncer too (.ci/run)
class RecordedAlongsideTests(TransactionTestCase):
    def tearDown(self):
        with celery_app.connection_for_write() as broker:
            broker.default_channel.queue_delete(QUEUE)

    def send(self, task_id: str | None = None) -> str:
        return find_job("testapp.add").apply_async(kwargs={"x": 1, "y": 2}, queue=QUEUE, task_id=task_id).id

    def assertRecorded(self, task_id: str, status: str = states.PENDING) -> None:
        result = TaskResult.objects.get(task_id=task_id)
        self.assertEqual(result.status, status)
        self.assertEqual((result.record.origin, result.record.queue, result.record.arguments),
                         ("code", QUEUE, {"args": [], "kwargs": {"x": 1, "y": 2}}))

    def test_a_job_sent_from_code_is_recorded_by_the_time_its_send_returns_on_the_process_s_own_connection(self):
        with CaptureQueriesContext(connection) as queries:
            task_id = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 0)
        self.assertRecorded(task_id)  # committed: read on another connection, Django's

    def test_a_worker_quicker_than_the_record_keeps_its_row_and_the_record_takes_it(self):
        """The worker picked the message up first and wrote the job's row (STARTED): the record's
        statement fails on that row; the record is written again and added to it."""
        task_id = new_task_id()
        TaskResult.objects.create(task_id=task_id, task_name="testapp.add", status=states.STARTED)
        self.send(task_id)
        self.assertRecorded(task_id, status=states.STARTED)
        self.assertEqual(TaskResult.objects.count(), 1)

    @skipIf(connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"),
            "behind PgBouncer, the connection's backend is PgBouncer's to hand out, not this test's to terminate")
    def test_a_broken_connection_is_left_for_django_s_and_opened_again_for_the_next_send(self):
        self.send()
        with connection.cursor() as cursor:  # as a PostgreSQL restart does to it
            cursor.execute("SELECT pg_terminate_backend(%s)", [alongside.state.conn.info.backend_pid])
        with CaptureQueriesContext(connection) as queries:
            again = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 1)
        self.assertRecorded(again)
        with CaptureQueriesContext(connection) as queries:
            reopened = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 0)
        self.assertRecorded(reopened)

    def test_a_send_while_another_thread_writes_its_record_writes_its_own_on_django_s_connection(self):
        # Another thread's send holds the connection, between its record and its confirm.
        with alongside.state.lock, CaptureQueriesContext(connection) as queries:
            task_id = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 1)
        self.assertRecorded(task_id)

    def test_a_publish_that_raised_leaves_the_connection_to_the_next_send(self):
        with mock.patch("kombu.messaging.Producer.publish", side_effect=OperationalError("connection refused")), \
                self.assertRaises(OperationalError):
            self.send()
        with CaptureQueriesContext(connection) as queries:
            task_id = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 0)
        self.assertRecorded(task_id)

    @override_settings(JOBS_RECORD_ALONGSIDE=False)
    def test_with_the_setting_off_the_record_is_written_on_django_s_connection_before_the_publish(self):
        with CaptureQueriesContext(connection) as queries:
            task_id = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 1)
        self.assertRecorded(task_id)

    def test_inside_a_transaction_the_record_is_the_transaction_s(self):
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            task_id = self.send()
        self.assertEqual(inserts_on_django_s_connection(queries), 1)
        self.assertRecorded(task_id)


@tag("integration")
class EnqueuedAlongsideTests(TransactionTestCase):
    """Django's `.enqueue()` outside a transaction: its record says no more than its message, so the
    publish writes it, alongside; a refused publish still settles it, never to run."""

    def setUp(self):
        task_backends["default"].queues.add(QUEUE)
        self.addCleanup(task_backends["default"].queues.discard, QUEUE)
        self.task = multiply.using(queue_name=QUEUE)

    def tearDown(self):
        with celery_app.connection_for_write() as broker:
            broker.default_channel.queue_delete(QUEUE)

    def test_an_enqueue_is_recorded_alongside_its_publish(self):
        with CaptureQueriesContext(connection) as queries:
            result = self.task.enqueue(6, y=7)
        self.assertEqual(inserts_on_django_s_connection(queries), 0)
        stored = TaskResult.objects.get(task_id=result.id)
        self.assertEqual((stored.status, stored.record.origin, stored.record.queue, stored.record.arguments),
                         (states.PENDING, "code", QUEUE, {"args": [], "kwargs": {"x": 6, "y": 7}}))

    def test_an_enqueue_the_broker_refused_is_settled_never_to_run(self):
        with mock.patch("kombu.messaging.Producer.publish", side_effect=OperationalError("connection refused")), \
                self.assertRaises(JobQueueUnavailable):
            self.task.enqueue(6, y=7)
        self.assertEqual(TaskResult.objects.get().status, states.REVOKED)
