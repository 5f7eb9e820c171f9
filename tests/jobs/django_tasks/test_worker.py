"""django.tasks on a real worker through RabbitMQ: enqueued in a transaction, run, read back."""
from datetime import timedelta

from django.db import transaction
from django.tasks import TaskResultStatus
from django.test import TransactionTestCase, tag
from django.utils import timezone

from jobs.testing.processes import Worker, wait_for
from tests.testapp.tasks import double_later, multiply, refuse, urgent, which_attempt


@tag("integration")
class DjangoTasksOnAWorkerTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.worker = Worker(concurrency=2, queues="default,demo").start()
        cls.addClassCleanup(cls.worker.stop)

    def finished(self, task, result):
        def done():
            found = task.get_result(result.id)
            return found if found.is_finished else None

        return wait_for(done, message=f"{task.module_path} {result.id} to finish; worker log:\n{self.worker.output()}")

    def test_enqueued_in_a_transaction_it_runs_after_the_commit_and_its_result_reads_back(self):
        with transaction.atomic():
            result = multiply.enqueue(6, 7)
            self.assertEqual(multiply.get_result(result.id).status, TaskResultStatus.READY)
        found = self.finished(multiply, result)
        self.assertEqual((found.status, found.return_value, found.worker_ids), (TaskResultStatus.SUCCESSFUL, 42,
                                                                               [self.worker.name]))
        self.assertLessEqual(found.enqueued_at, found.started_at)
        self.assertLessEqual(found.started_at, found.finished_at)

    def test_a_rolled_back_transaction_sends_nothing(self):
        try:
            with transaction.atomic():
                result = multiply.enqueue(1, 1)
                raise RuntimeError("the view failed")
        except RuntimeError:
            pass
        from django.tasks.exceptions import TaskResultDoesNotExist

        with self.assertRaises(TaskResultDoesNotExist):
            multiply.get_result(result.id)

    def test_async_context_failure_and_another_queue(self):
        results = [(double_later, double_later.enqueue(21)), (which_attempt, which_attempt.enqueue("x")),
                   (refuse, refuse.enqueue("no")), (urgent, urgent.enqueue(5))]
        found = [self.finished(task, result) for task, result in results]
        self.assertEqual(found[0].return_value, 42)
        self.assertEqual(found[1].return_value, {"label": "x", "attempt": 1, "id": results[1][1].id})
        self.assertEqual((found[2].status, found[2].errors[0].exception_class), (TaskResultStatus.FAILED, ValueError))
        self.assertIn("ValueError: no", found[2].errors[0].traceback)
        self.assertEqual(found[3].return_value, 5)

    def test_run_after_defers_the_run(self):
        later = timezone.now() + timedelta(seconds=3)
        result = multiply.using(run_after=later).enqueue(2, 2)
        found = self.finished(multiply, result)
        self.assertGreaterEqual(found.started_at, later)
