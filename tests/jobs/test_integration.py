"""End to end on the real services: API -> RabbitMQ -> a real worker -> PostgreSQL -> API."""
import time
from unittest import skipIf

from celery import current_app as celery_app
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import TransactionTestCase, tag
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.launching.services import job_launch, job_retry
from jobs.models import JobRecord
from jobs.records import alongside
from jobs.testing.processes import Worker, dead_letter_count, wait_for
from tests.users import grant

# Counting a worker's connections in pg_stat_activity: behind PgBouncer's transaction pooling it shows PgBouncer's
# server connections, which it hands from client to client (this test's own among them) and keeps idle for a
# while after, not the worker's; the direct run checks them.
behind_pgbouncer_skip = skipIf(connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"),
                               "behind PgBouncer, pg_stat_activity shows PgBouncer's server connections, not the worker's")


@tag("integration")
class WorkerEndToEndTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.worker = Worker(concurrency=2, queues="default,long").start()
        cls.addClassCleanup(cls.worker.stop)

    def setUp(self):
        self.client.force_login(User.objects.create_user("dana"))

    def get(self, url):
        return self.client.get(url)

    def launch(self, task, args=(), kwargs=None):
        response = self.client.post(
            "/api/jobs/", {"task": task, "args": list(args), "kwargs": kwargs or {}}, content_type="application/json",
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
        launched = self.launch("testapp.add", [4, 4])
        body = self.wait_until_done(launched["url"])
        self.assertEqual((body["status"], body["result"], body["error"]), ("SUCCESS", 8, None))
        self.assertLessEqual(body["created_at"], body["started_at"])
        self.assertLessEqual(body["started_at"], body["done_at"])

        record = TaskResult.objects.get(task_id=launched["id"])
        self.assertEqual(record.task_name, "testapp.add")
        self.assertEqual(record.task_kwargs, "\"{'x': 4, 'y': 4}\"")
        self.assertEqual(record.worker, self.worker.name)

    def test_say_hello(self):
        body = self.wait_until_done(self.launch("testapp.say_hello", kwargs={"name": "Ada"})["url"])
        self.assertEqual(body["result"], "Hello, Ada!")

    def test_worker_refuses_arguments_that_bypassed_the_api(self):
        """A message sent from code with bad arguments fails with the validation message."""
        grant(User.objects.get(username="dana"), "django_celery_results.view_taskresult")  # from code: nobody's
        job = find_job("testapp.add").apply_async(args=["four", 4])
        body = self.wait_until_done(f"/api/jobs/{job.id}/")
        self.assertEqual(body["status"], "FAILURE")
        self.assertEqual(body["error"], "InvalidArguments: Invalid arguments for testapp.add: x: Input should be a valid integer")
        self.assertIn("InvalidArguments", TaskResult.objects.get(task_id=job.id).traceback)

    def test_progress_is_reported_while_the_job_runs(self):
        url = self.launch("testapp.countdown", [3])["url"]
        seen = []

        def finished():
            body = self.get(url).json()
            if body["status"] == "PROGRESS":
                seen.append(body["progress"]["current"])
            return body if body["status"] == "SUCCESS" else None

        body = wait_for(finished, timeout=20, interval=0.2, message="the countdown to finish")
        self.assertEqual(body["result"], "Counted down 3 s.")
        self.assertEqual(body["progress"]["percent"], 100.0)
        self.assertGreaterEqual(len(set(seen)), 2, seen)
        self.assertEqual(seen, sorted(seen))

    def test_a_cancelled_running_job_ends_revoked(self):
        operator = User.objects.create_user("ops")
        operator.user_permissions.add(Permission.objects.get(codename="cancel_job"))
        launched = self.launch("testapp.countdown", [20])
        wait_for(lambda: self.get(launched["url"]).json()["status"] == "PROGRESS", message="the countdown to start")
        JobRecord.objects.filter(result__task_id=launched["id"]).update(launched_by=operator)
        self.client.force_login(operator)
        self.assertEqual(self.client.post(f"/jobs/{launched['id']}/cancel/").status_code, 302)

        # The worker stops it: no progress after the cancel, and the worker is free for the next job.
        record = TaskResult.objects.get(task_id=launched["id"])
        self.assertEqual(record.status, "REVOKED")
        time.sleep(2)
        record.refresh_from_db()
        self.assertEqual(record.status, "REVOKED")
        self.assertIn(f"Terminating {launched['id']}", self.worker.output())
        self.assertEqual(self.wait_until_done(self.launch("testapp.add", [1, 1])["url"])["result"], 2)

    def test_retrying_a_failed_job_creates_a_linked_job(self):
        """A job that failed for a passing reason (here: a 1 s time limit) is retried, and succeeds."""
        dana = User.objects.get(username="dana")
        failed = job_launch(name="testapp.countdown", args=[2], options={"soft_time_limit": 1}, launched_by=dana)
        body = self.wait_until_done(f"/api/jobs/{failed.task_id}/")
        self.assertEqual((body["status"], body["error"]), ("FAILURE", "SoftTimeLimitExceeded"))
        retried = job_retry(result=TaskResult.objects.get(task_id=failed.task_id), user=dana)
        body = self.wait_until_done(f"/api/jobs/{retried.task_id}/")
        self.assertEqual((body["status"], body["retry_of"], body["origin"]), ("SUCCESS", failed.task_id, "retry"))
        self.assertEqual(self.get(f"/api/jobs/{failed.task_id}/").json()["retried_as"], [retried.task_id])

    def test_a_pickled_message_is_refused_and_never_executed(self):
        """Pickle runs code when loaded: a worker that accepts only JSON drops it and goes on."""
        import os
        import pickle
        import tempfile
        import uuid

        marker = os.path.join(tempfile.mkdtemp(), "pwned")

        class Exploit:
            def __reduce__(self):
                return (open, (marker, "w"))

        task_id = str(uuid.uuid4())
        with celery_app.producer_or_acquire() as producer:
            producer.publish(
                pickle.dumps(((), {}, {})), routing_key="default", exchange="default", serializer=None,
                content_type="application/x-python-serialize", content_encoding="binary",
                headers={"task": "testapp.add", "id": task_id, "lang": "py", "argsrepr": repr(Exploit())},
            )
            producer.publish(
                pickle.dumps(Exploit()), routing_key="default", exchange="default", serializer=None,
                content_type="application/x-python-serialize", content_encoding="binary",
                headers={"task": "testapp.add", "id": str(uuid.uuid4()), "lang": "py"},
            )
        wait_for(lambda: self.worker.output().count("Refusing to deserialize untrusted content of type pickle") >= 2,
                 message=f"the worker to refuse both messages; log:\n{self.worker.output()[-2000:]}")
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.wait_until_done(self.launch("testapp.add", [2, 2])["url"])["result"], 4)

    def test_a_message_no_worker_can_run_is_dead_lettered_not_lost(self):
        """Rejected messages (here: a task no worker knows) land in the dead-letter queue."""
        import uuid

        before = dead_letter_count()
        celery_app.send_task("jobs.renamed_last_release", args=[1], task_id=str(uuid.uuid4()))
        wait_for(lambda: dead_letter_count() == before + 1, message=f"the dead letter; log:\n{self.worker.output()[-2000:]}")
        self.assertIn("Received unregistered task of type 'jobs.renamed_last_release'", self.worker.output())

    def run_batch(self, count: int):
        urls = [self.launch("testapp.add", [n, n])["url"] for n in range(count)]
        for n, url in enumerate(urls):
            self.assertEqual(self.wait_until_done(url)["result"], 2 * n)

    @behind_pgbouncer_skip
    def test_worker_keeps_its_database_connections_and_replaces_broken_ones(self):
        """Stock Celery closes the connection after each task; ours keeps it across tasks."""
        self.run_batch(6)
        kept = backends()
        self.assertTrue(kept, "the worker's pool processes should hold open connections between tasks")
        self.run_batch(20)
        # Still the same connections: none of the first ones replaced, at most one per pool process,
        # one for the main process (it records the jobs it revokes) and one for its heartbeat thread.
        after = backends()
        self.assertLessEqual(kept, after)
        self.assertLessEqual(len(after), self.worker.concurrency + 2)
        kept = after

        # What a PostgreSQL restart does to a pool process's connection.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(kept)])
        wait_for(lambda: not (backends() & kept), message="the connections to be terminated")
        self.run_batch(6)
        self.assertTrue(backends())
        self.assertFalse(backends() & kept)


@tag("integration")
class ThreadsPoolConnectionTests(TransactionTestCase):
    @behind_pgbouncer_skip
    def test_a_threads_pool_worker_does_not_keep_a_connection_per_thread(self):
        """Connections are kept only in prefork and solo pools: in a threads pool every thread has
        its own, so they are closed after each task instead of piling up (celery#10021)."""
        worker = Worker(concurrency=6, pool="threads").start()
        self.addCleanup(worker.stop)
        alice = User.objects.create_user("alice")
        # Six one-second jobs at once: each runs in its own thread and writes its progress.
        launched = [job_launch(name="testapp.countdown", args=[1], launched_by=alice) for _ in range(6)]
        done = TaskResult.objects.filter(task_id__in=[result.task_id for result in launched], status="SUCCESS")
        wait_for(lambda: done.count() == 6, message=f"the jobs to run; log:\n{worker.output()[-2000:]}")
        # Left: the main process's and its heartbeat thread's (jobs/queues/workers.py).
        wait_for(lambda: len(backends()) <= 2, timeout=10,
                 message=f"the worker's connections to close; still open: {len(backends())}")


def backends() -> set[int]:
    """The PostgreSQL backends of this database other than this process's own."""
    alongside.close()  # this process's second, should an earlier test have sent a job from code
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return {pid for (pid,) in cursor.fetchall()}


@tag("integration")
class NoWorkerTests(TransactionTestCase):
    def tearDown(self):
        celery_app.control.purge()  # the tests' own vhost: leave no message for the next worker

    def test_a_job_is_visible_as_pending_while_no_worker_runs(self):
        self.client.force_login(User.objects.create_user("erin"))
        launched = self.client.post(
            "/api/jobs/", {"task": "testapp.add", "args": [1, 2]}, content_type="application/json",
        ).json()
        time.sleep(1)
        body = self.client.get(launched["url"]).json()
        self.assertEqual((body["status"], body["launched_by"], body["queue"]), ("PENDING", "erin", "default"))
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        self.assertContains(self.client.get("/admin/django_celery_results/taskresult/?status=PENDING"), launched["id"])
