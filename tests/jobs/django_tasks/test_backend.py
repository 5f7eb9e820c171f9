"""Django's tasks API (django.tasks) on the engine: the backend contract Django documents (every
capability flag, every TaskResult field, signals, async, defer, priority, queues, errors), and a
django.tasks task as a first-class catalog job."""
import json
from datetime import timedelta
from unittest import mock

from celery import states
from django.contrib.auth.models import User
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.catalog import catalog, find_job
from jobs.django_tasks.backend import JobsBackend, amqp_priority
from jobs.exceptions import InvalidArguments
from jobs.models import JobRecord
from tests.testapp.tasks import add, double_later, multiply, refuse, unhinted, urgent, which_attempt


def received(signal):
    """What `signal` is sent with from now on: (sender, task result, its status then), a list filled as it
    goes; and the call that stops listening."""
    results = []

    def receiver(sender, task_result, **kwargs):
        results.append((sender, task_result, task_result.status))

    signal.connect(receiver, weak=False)
    return results, lambda: signal.disconnect(receiver)


class CapabilityTests(TestCase):
    def test_the_site_runs_django_tasks_on_the_engine_with_every_capability(self):
        backend = task_backends["default"]
        self.assertIsInstance(backend, JobsBackend)
        self.assertEqual((backend.supports_defer, backend.supports_async_task, backend.supports_get_result,
                          backend.supports_priority), (True, True, True, True))
        self.assertEqual(backend.queues, {"default", "email", "long", "demo"})

    def test_a_queue_the_broker_has_not_is_refused_when_the_task_is_made(self):
        with self.assertRaisesMessage(InvalidTask, "Queue 'nowhere' is not valid for backend."):
            multiply.using(queue_name="nowhere")

    def test_a_priority_outside_django_s_range_is_refused(self):
        with self.assertRaisesMessage(InvalidTask, "priority must be a whole number between -100 and 100"):
            multiply.using(priority=101)

    def test_django_priorities_map_onto_the_broker_s_with_zero_at_the_engine_s_default(self):
        self.assertEqual([amqp_priority(p) for p in (-100, -50, -1, 0, 1, 50, 100)], [0, 3, 5, 5, 5, 7, 9])


class CatalogTests(TestCase):
    def test_a_django_task_is_a_catalog_job_named_by_its_module_path_with_its_schema(self):
        job = find_job("tests.testapp.tasks.multiply")
        self.assertIn("tests.testapp.tasks.multiply", catalog())
        self.assertEqual(job.usage, "tests.testapp.tasks.multiply(x: int, y: int = 2)")
        self.assertEqual(job.description, "Multiply two integers.")
        # the context parameter is Django's to give, not an argument
        self.assertEqual(list(find_job("tests.testapp.tasks.which_attempt").arguments_model.model_fields), ["label"])

    def test_its_own_queue_is_where_a_launch_from_the_api_sends_it(self):
        staff = User.objects.create_superuser("sam", password="pw")
        self.client.force_login(staff)
        with mock.patch.object(find_job(urgent.module_path), "apply_async") as apply_async, \
                self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/api/jobs/", {"task": urgent.module_path, "args": [3]},
                                        content_type="application/json")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(JobRecord.objects.get().queue, "demo")
        self.assertEqual(apply_async.call_args.kwargs["kwargs"], {"x": 3})


class EnqueueTests(TestCase):
    def test_enqueue_checks_the_arguments_against_the_type_hints_before_anything_is_written(self):
        with self.assertRaises(InvalidArguments) as refused:
            multiply.enqueue("3", 4)
        self.assertEqual(refused.exception.errors, [{"field": "x", "message": "Input should be a valid integer"}])
        self.assertFalse(TaskResult.objects.exists())

    def test_an_argument_without_a_type_hint_takes_any_json_value_and_nothing_else(self):
        with mock.patch.object(find_job(unhinted.module_path), "apply_async"):
            result = unhinted.enqueue({"nested": [1, "two"]}, count=2)
        self.assertEqual(result.kwargs, {"label": {"nested": [1, "two"]}, "count": 2})
        with self.assertRaises(InvalidArguments) as refused:
            unhinted.enqueue(object())
        self.assertIn("not JSON serializable", refused.exception.errors[0]["message"])
        self.assertEqual(TaskResult.objects.count(), 1)

    def test_enqueue_records_the_job_pending_in_the_caller_s_transaction_and_publishes_on_commit(self):
        enqueued, stop = received(task_enqueued)
        self.addCleanup(stop)
        with mock.patch.object(find_job(multiply.module_path), "apply_async") as apply_async:
            with self.captureOnCommitCallbacks() as callbacks:
                result = multiply.enqueue(6, y=7)
                self.assertEqual(TaskResult.objects.get(task_id=result.id).status, states.PENDING)
            apply_async.assert_not_called()  # not before the transaction commits
            for callback in callbacks:
                callback()
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual((result.args, result.kwargs, result.backend), ([], {"x": 6, "y": 7}, "default"))
        self.assertIsNotNone(result.enqueued_at)
        self.assertEqual((result.started_at, result.finished_at, result.errors, result.worker_ids), (None, None, [], []))
        self.assertEqual([(sender, sent.id, status) for sender, sent, status in enqueued],
                         [(JobsBackend, result.id, TaskResultStatus.READY)])
        options = apply_async.call_args.kwargs
        self.assertEqual((options["task_id"], options["queue"], options["priority"]), (result.id, "default", 5))
        record = JobRecord.objects.get(result__task_id=result.id)
        self.assertEqual(record.arguments, {"args": [], "kwargs": {"x": 6, "y": 7}})

    def test_run_after_is_the_message_s_eta_and_priority_the_broker_s(self):
        later = timezone.now() + timedelta(minutes=5)
        with mock.patch.object(find_job(urgent.module_path), "apply_async") as apply_async, \
                self.captureOnCommitCallbacks(execute=True):
            urgent.using(run_after=later).enqueue(1)
        options = apply_async.call_args.kwargs
        self.assertEqual((options["eta"], options["queue"], options["priority"]), (later, "demo", 9))


class AsyncTests(TestCase):
    async def test_aenqueue_and_aget_result_work_from_async_code(self):
        with mock.patch.object(find_job(multiply.module_path), "apply_async"):
            result = await multiply.aenqueue(2, 21)
            found = await multiply.aget_result(result.id)
        self.assertEqual((found.id, found.status, found.kwargs), (result.id, TaskResultStatus.READY, {"x": 2, "y": 21}))


class ResultTests(TestCase):
    def enqueued(self, task, *args, **kwargs):
        with mock.patch.object(find_job(task.module_path), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            return task.enqueue(*args, **kwargs)

    def test_get_result_reads_a_success_from_any_process_with_every_field(self):
        result = self.enqueued(multiply, 6, 7)
        started, done = timezone.now(), timezone.now() + timedelta(seconds=1)
        TaskResult.objects.filter(task_id=result.id).update(status=states.SUCCESS, result="42", worker="w1@host",
                                                            date_started=started, date_done=done)
        found = multiply.get_result(result.id)
        self.assertEqual((found.status, found.return_value, found.is_finished), (TaskResultStatus.SUCCESSFUL, 42, True))
        self.assertEqual((found.started_at, found.last_attempted_at, found.finished_at), (started, started, done))
        self.assertEqual((found.worker_ids, found.attempts, found.errors), (["w1@host"], 1, []))
        self.assertEqual(found.enqueued_at, TaskResult.objects.get(task_id=result.id).date_created)
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    def test_a_failure_has_its_exception_class_and_traceback(self):
        result = self.enqueued(refuse, "no")
        TaskResult.objects.filter(task_id=result.id).update(
            status=states.FAILURE, traceback="Traceback ...\nValueError: no",
            result=json.dumps({"exc_type": "ValueError", "exc_module": "builtins", "exc_message": ["no"]}))
        found = default_task_backend.get_result(result.id)
        self.assertEqual(found.status, TaskResultStatus.FAILED)
        self.assertIs(found.errors[0].exception_class, ValueError)
        self.assertIn("ValueError: no", found.errors[0].traceback)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            found.return_value  # noqa: B018

    def test_a_cancelled_job_is_failed_with_celery_s_revoked_error(self):
        from celery.exceptions import TaskRevokedError

        result = self.enqueued(multiply, 1)
        TaskResult.objects.filter(task_id=result.id).update(
            status=states.REVOKED, result=json.dumps({"exc_type": "TaskRevokedError", "exc_message": ["cancelled"]}))
        self.assertIs(multiply.get_result(result.id).errors[0].exception_class, TaskRevokedError)

    def test_unknown_ids_and_another_task_s_ids_are_told_apart(self):
        with self.assertRaises(TaskResultDoesNotExist):
            multiply.get_result("no-such-id")
        result = self.enqueued(multiply, 1)
        with self.assertRaises(TaskResultMismatch):
            refuse.get_result(result.id)

    def test_an_at_job_s_result_reads_through_the_same_api(self):
        with mock.patch.object(add, "apply_async"), self.captureOnCommitCallbacks(execute=True):
            from jobs.launching.services import job_launch

            launched = job_launch(name="testapp.add", args=[1, 2])
        found = default_task_backend.get_result(launched.task_id)
        self.assertEqual((found.task.func, found.kwargs, found.status), (add.run, {"x": 1, "y": 2}, TaskResultStatus.READY))
        self.assertNotIn("tests.testapp.tasks.add", catalog())  # read, not entered in the catalog a second time


class RunTests(TestCase):
    """The worker's side, run in this process (Celery's apply): what the signals and the context say."""

    def test_a_run_sends_started_then_finished_and_returns_the_value(self):
        started, stop_started = received(task_started)
        finished, stop_finished = received(task_finished)
        self.addCleanup(stop_started)
        self.addCleanup(stop_finished)
        outcome = find_job(multiply.module_path).apply(kwargs={"x": 3, "y": 5}, task_id="run-1")
        self.assertEqual(outcome.get(), 15)
        self.assertEqual([(sender, status, result.id) for sender, result, status in started],
                         [(JobsBackend, TaskResultStatus.RUNNING, "run-1")])
        self.assertEqual([(status, result.return_value) for _, result, status in finished],
                         [(TaskResultStatus.SUCCESSFUL, 15)])

    def test_a_failure_sends_finished_failed_with_its_traceback_and_raises_for_celery(self):
        finished, stop = received(task_finished)
        self.addCleanup(stop)
        outcome = find_job(refuse.module_path).apply(kwargs={"message": "boom"})
        self.assertEqual(outcome.status, states.FAILURE)
        [(_, result, status)] = finished
        self.assertEqual(status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class_path, "builtins.ValueError")
        self.assertIn("ValueError: boom", result.errors[0].traceback)

    def test_a_task_that_takes_context_gets_its_attempt_and_result(self):
        outcome = find_job(which_attempt.module_path).apply(kwargs={"label": "a"}, task_id="ctx-1")
        self.assertEqual(outcome.get(), {"label": "a", "attempt": 1, "id": "ctx-1"})

    def test_an_async_task_runs(self):
        self.assertEqual(find_job(double_later.module_path).apply(kwargs={"x": 21}).get(), 42)

    def test_the_pages_show_a_django_task_as_any_job(self):
        staff = User.objects.create_superuser("ann", password="pw")
        self.client.force_login(staff)
        with mock.patch.object(find_job(multiply.module_path), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            result = multiply.enqueue(2, 3)
        page = self.client.get(reverse("jobs:detail", args=[result.id]))
        self.assertContains(page, "tests.testapp.tasks.multiply")
        admin = self.client.get(reverse("admin:django_celery_results_taskresult_changelist"))
        self.assertContains(admin, "tests.testapp.tasks.multiply")
