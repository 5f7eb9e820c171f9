"""End to end on the real services: API -> RabbitMQ -> a real worker -> PostgreSQL -> API."""
from django.contrib.auth.models import User
from django.db import connection
from django.test import TransactionTestCase, tag
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.services import api_token_create

from .worker import Worker, wait_for


@tag("integration")
class WorkerEndToEndTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.worker = Worker(concurrency=2).start()
        cls.addClassCleanup(cls.worker.stop)

    def setUp(self):
        _, self.token = api_token_create(user=User.objects.create_user("dana"), name="tests")

    def get(self, url):
        return self.client.get(url, HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def launch(self, task, args=(), kwargs=None):
        response = self.client.post(
            "/api/jobs/", {"task": task, "args": list(args), "kwargs": kwargs or {}},
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {self.token}",
        )
        self.assertEqual(response.status_code, 202, response.content)
        return response.json()

    def wait_until_done(self, url):
        def done():
            response = self.get(url)
            # A job sent from code, not through the API, is unknown until the worker starts it.
            body = response.json() if response.status_code == 200 else {"status": None}
            return body if body["status"] in ("SUCCESS", "FAILURE") else None

        return wait_for(done, message=f"{url} to finish; worker log:\n{self.worker.output()}")

    def test_job_launched_through_the_api_runs_and_its_result_is_stored(self):
        launched = self.launch("jobs.add", [4, 4])
        body = self.wait_until_done(launched["url"])
        self.assertEqual((body["status"], body["result"], body["error"]), ("SUCCESS", 8, None))
        self.assertLessEqual(body["created_at"], body["started_at"])
        self.assertLessEqual(body["started_at"], body["done_at"])

        record = TaskResult.objects.get(task_id=launched["id"])
        self.assertEqual(record.task_name, "jobs.add")
        self.assertEqual(record.task_kwargs, "\"{'x': 4, 'y': 4}\"")
        self.assertEqual(record.worker, self.worker.name)

    def test_say_hello(self):
        body = self.wait_until_done(self.launch("jobs.say_hello", kwargs={"name": "Ada"})["url"])
        self.assertEqual(body["result"], "Hello, Ada!")

    def test_worker_refuses_arguments_that_bypassed_the_api(self):
        """A message sent from code with bad arguments fails with the validation message."""
        job = find_job("jobs.add").apply_async(args=["four", 4])
        body = self.wait_until_done(f"/api/jobs/{job.id}/")
        self.assertEqual(body["status"], "FAILURE")
        self.assertEqual(body["error"], "InvalidArguments: Invalid arguments for jobs.add: x: Input should be a valid integer")
        self.assertIn("InvalidArguments", TaskResult.objects.get(task_id=job.id).traceback)

    def worker_backends(self) -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {pid for (pid,) in cursor.fetchall()}

    def run_batch(self, count: int):
        urls = [self.launch("jobs.add", [n, n])["url"] for n in range(count)]
        for n, url in enumerate(urls):
            self.assertEqual(self.wait_until_done(url)["result"], 2 * n)

    def test_worker_keeps_its_database_connections_and_replaces_broken_ones(self):
        """Stock Celery closes the connection after each task; ours keeps it across tasks."""
        self.run_batch(6)
        kept = self.worker_backends()
        self.assertTrue(kept, "the worker's pool processes should hold open connections between tasks")
        self.run_batch(20)
        # Still the same connections: at most one per pool process, none of the first ones replaced.
        after = self.worker_backends()
        self.assertLessEqual(kept, after)
        self.assertLessEqual(len(after), self.worker.concurrency)
        kept = after

        # What a PostgreSQL restart does to a pool process's connection.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(kept)])
        wait_for(lambda: not (self.worker_backends() & kept), message="the connections to be terminated")
        self.run_batch(6)
        self.assertTrue(self.worker_backends())
        self.assertFalse(self.worker_backends() & kept)
