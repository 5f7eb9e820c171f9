"""Killing things on purpose, against the real RabbitMQ and PostgreSQL, and counting.

Each test runs a batch of `jobs.probe` jobs (each records its key once, and counts its runs),
injects a fault mid-batch, lets the system recover, then checks: every job reached a final
state, every key was recorded exactly once, every result is stored. Tagged `faults` (and
`integration`): `python manage.py test --tag faults` runs them alone. The PostgreSQL restart needs
`pg_ctlcluster` and the right to use it (root, as CI runs).
"""
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from itertools import pairwise

from celery import current_app
from django.db import connection
from django.test import TransactionTestCase, tag
from django.utils import timezone
from django_celery_results.models import TaskResult

from accounts.services import api_token_create
from examples.models import Probe
from jobs.cache import cache_unanswered_forget
from jobs.catalog import find_job
from jobs.launching.selectors import job_details
from jobs.launching.services import job_launch
from jobs.models import JobRecord
from jobs.records.selectors import jobs_with_details
from jobs.testing.broker import connections_close
from jobs.testing.processes import Beat, Worker, dead_letter_count, wait_for

BATCH = 30


@tag("integration", "faults")
class FaultTests(TransactionTestCase):
    def launch_batch(self, seconds: float) -> list[str]:
        self.keys = [f"probe-{uuid.uuid4().hex[:8]}" for _ in range(BATCH)]
        return [job_launch(name="jobs.probe", args=[key, seconds]).task_id for key in self.keys]

    def done(self, task_ids) -> int:
        return TaskResult.objects.filter(task_id__in=task_ids, status__in=["SUCCESS", "FAILURE"]).count()

    def assertNothingLostOrDoubled(self, task_ids):
        statuses = dict(TaskResult.objects.filter(task_id__in=task_ids).values_list("task_id", "status"))
        self.assertEqual(set(statuses.values()), {"SUCCESS"}, statuses)
        self.assertEqual(len(statuses), BATCH)
        probes = dict(Probe.objects.filter(key__in=self.keys).values_list("key", "runs"))
        self.assertEqual(sorted(probes), sorted(self.keys))  # each key recorded, once (a unique row)
        return sum(runs - 1 for runs in probes.values())  # runs beyond the first: the redeliveries

    def kill_pool_process_running(self, task_id: str, times: int) -> threading.Thread:
        """In the background: each time `task_id` starts, SIGKILL the pool process running it."""
        killed, stop = [], threading.Event()

        def killer():
            while len(killed) < times and not stop.is_set():
                row = TaskResult.objects.filter(task_id=task_id, status="STARTED").values_list("result", flat=True).first()
                pid = json.loads(row)["pid"] if row else None
                if pid and pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.02)
            connection.close()

        thread = threading.Thread(target=killer, daemon=True)
        thread.killed = killed
        thread.start()
        self.addCleanup(thread.join)  # before the test database goes: the thread holds a connection
        self.addCleanup(stop.set)
        return thread

    def test_a_pool_process_killed_mid_job_loses_nothing(self):
        """The job whose process died runs again (a few seconds later) and completes."""
        worker = Worker(concurrency=2).start()
        self.addCleanup(worker.stop)
        task_ids = self.launch_batch(seconds=1)
        killer = self.kill_pool_process_running(task_ids[0], times=1)
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=120, message="the batch")
        self.assertEqual(len(killer.killed), 1)
        rerun = self.assertNothingLostOrDoubled(task_ids)
        record = JobRecord.objects.get(result__task_id=task_ids[0])
        self.assertEqual(record.attempts, 2)
        self.assertIn("SIGKILL", record.last_error)
        # The interrupted delivery is kept, not overwritten by the second start.
        self.assertEqual([(d["worker"], d["ended"]) for d in record.deliveries], [(worker.name, "failed, and was retried")])
        print(f"\nfault: pool process SIGKILL: {BATCH} jobs, 1 killed mid-run and run again, 0 lost, "
              f"0 doubled effects ({rerun} recorded twice)")

    def test_a_job_delivered_again_while_it_runs_does_not_run_beside_itself(self):
        """As RabbitMQ does when a worker's connection dies mid-job (a node crash): the same message
        goes to another worker while the first still runs it. The second does not start a run beside
        it; it sends the message again for later, and then finds the job done and does nothing."""
        workers = [Worker(concurrency=1).start(), Worker(concurrency=1).start()]
        for worker in workers:
            self.addCleanup(worker.stop)
        key = f"probe-{uuid.uuid4().hex[:8]}"
        task_id = job_launch(name="jobs.probe", args=[key, 3]).task_id
        wait_for(lambda: TaskResult.objects.filter(task_id=task_id, status="STARTED").exists(), message="the first run")
        current_app.send_task("jobs.probe", args=[key, 3], task_id=task_id, retries=1)  # the same job, again

        def logs():
            return "".join(worker.output() for worker in workers)

        wait_for(lambda: logs().count(f"[{task_id}] ignored") >= 2, timeout=30,
                 message=f"the second delivery to be put off, then to find the job done; logs:\n{logs()[-3000:]}")
        self.assertIn(f"Job {task_id} (jobs.probe) may still be running on test-", logs())
        self.assertEqual(Probe.objects.get(key=key).runs, 1)
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, "SUCCESS")
        self.assertEqual(JobRecord.objects.get(result__task_id=task_id).attempts, 1)

    def test_a_short_job_handed_on_while_it_runs_unmarked_does_not_run_beside_itself(self):
        """A job shorter than JOBS_STARTED_AFTER_SECONDS is not marked STARTED as it starts
        (jobs/results/started.py). Its worker's connections to RabbitMQ are closed mid-run, as a network
        fault or a broker node's crash ends them, while the worker process lives on: RabbitMQ hands the
        message to another worker while the first run goes on, unmarked. That delivery waits until such
        a run would have marked itself, then finds the job done and does nothing."""
        environment = {"JOBS_STARTED_AFTER_SECONDS": "6"}  # the job takes 3 s: short of it
        first = Worker(concurrency=1, queues="handed-on", environment=environment).start()
        second = Worker(concurrency=1, queues="default", environment=environment).start()
        self.addCleanup(second.stop)
        self.addCleanup(first.stop)
        key = f"probe-{uuid.uuid4().hex[:8]}"
        task_id = job_launch(name="jobs.probe", args=[key, 3], options={"queue": "handed-on"}).task_id
        wait_for(lambda: f"jobs.probe[{task_id}] received" in first.output(), message="the first delivery")
        replies = current_app.control.add_consumer("handed-on", destination=[second.name], reply=True, timeout=10)
        self.assertEqual(len(replies), 1, replies)
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, "PENDING")  # running, unmarked
        os.kill(first.process.pid, signal.SIGSTOP)  # its main process: the pool process runs on, nothing reconnects
        self.addCleanup(first.resume)
        closed_at = timezone.now()
        self.assertGreater(connections_close(first.process.pid), 0)
        wait_for(lambda: f"[{task_id}] ignored" in second.output() or f"[{task_id}] succeeded" in second.output(),
                 timeout=60, message=f"the second delivery to end; its log:\n{second.output()[-3000:]}")
        probe = Probe.objects.get(key=key)
        self.assertGreater(probe.first_at, closed_at)  # the first run was still going when the message was handed on
        self.assertEqual(probe.runs, 1)
        self.assertIn(f"[{task_id}] ignored", second.output())  # it found the job done
        self.assertEqual(TaskResult.objects.get(task_id=task_id).status, "SUCCESS")
        self.assertEqual(JobRecord.objects.get(result__task_id=task_id).attempts, 1)

    def test_a_poison_job_fails_after_bounded_tries_and_the_rest_flow(self):
        """A job that kills its process on every try is given up (FAILURE, with the reason)."""
        worker = Worker(concurrency=2).start()
        self.addCleanup(worker.stop)
        dead_before = dead_letter_count()
        poison = job_launch(name="jobs.probe", args=["poison", 0.5], options={"countdown": 0}).task_id
        tries = find_job("jobs.probe").max_retries + 1
        killer = self.kill_pool_process_running(poison, times=tries + 1)  # would kill a further try too
        task_ids = self.launch_batch(seconds=0.2)
        started = time.monotonic()
        failed = wait_for(lambda: TaskResult.objects.filter(task_id=poison, status="FAILURE").first(), timeout=120,
                          message=f"the poison job to be given up; log:\n{worker.output()[-3000:]}")
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=60, message="the other jobs")
        self.assertNothingLostOrDoubled(task_ids)
        self.assertIn("WorkerLostError", failed.result)
        wait_for(lambda: dead_letter_count() == dead_before + 1, message="the poison message in the dead-letter queue")
        self.assertEqual(len(killer.killed), tries)
        self.assertFalse(Probe.objects.filter(key="poison").exists())
        record = JobRecord.objects.get(result__task_id=poison)
        self.assertEqual(record.attempts, tries)
        print(f"\nfault: poison job: given up after {tries} tries in {time.monotonic() - started:.1f} s, "
              f"FAILURE (WorkerLostError), dead-lettered; the other {BATCH} jobs: 0 lost, 0 doubled")

    def test_a_worker_killed_with_sigkill_loses_nothing(self):
        """Its reserved and running jobs go back to the queue and run on another worker."""
        doomed = Worker(concurrency=2).start()
        task_ids = self.launch_batch(seconds=0.3)
        # Killed while a job is marked running: a run is marked STARTED 0.1 s into its 0.3 s
        # (JOBS_STARTED_AFTER_SECONDS), so at a moment picked otherwise both may be unmarked.
        wait_for(lambda: self.done(task_ids) >= 5 and TaskResult.objects.filter(
            task_id__in=task_ids, status="STARTED").exists(), message="a few jobs to finish, one to be running")
        doomed.kill()
        killed_at = time.monotonic()
        running = list(TaskResult.objects.filter(task_id__in=task_ids, status="STARTED").values_list("task_id", flat=True))
        in_flight = len(running)
        survivor = Worker(concurrency=2).start()
        self.addCleanup(survivor.stop)
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=90, message="the batch to finish after the kill")
        rerun = self.assertNothingLostOrDoubled(task_ids)
        self.assertGreater(in_flight, 0)
        for task_id in running:  # each shows its interrupted delivery, and its second
            job = job_details(jobs_with_details().get(task_id=task_id))
            self.assertEqual([(d["worker"], d["ended"]) for d in job["deliveries"]],
                             [(doomed.name, "interrupted: its worker stopped or was lost mid-run"),
                              (survivor.name, "success")])
            self.assertEqual(job["attempt"], 2)
        print(f"\nfault: worker SIGKILL: {BATCH} jobs, {in_flight} running when killed and run again, 0 lost, "
              f"0 doubled effects ({rerun} recorded twice), all done {time.monotonic() - killed_at:.1f} s after")

    def test_a_worker_stopped_with_sigterm_finishes_its_running_job(self):
        """Warm shutdown: the running job completes; the queued ones wait for the next worker."""
        stopping = Worker(concurrency=1).start()
        task_ids = self.launch_batch(seconds=2)
        wait_for(lambda: TaskResult.objects.filter(task_id=task_ids[0], status="STARTED").exists(),
                 message="the first job to start")
        os.kill(stopping.process.pid, signal.SIGTERM)
        stopping.process.wait(timeout=30)
        self.assertEqual(TaskResult.objects.get(task_id=task_ids[0]).status, "SUCCESS")
        stopped_at = time.monotonic()
        successor = Worker(concurrency=2).start()
        self.addCleanup(successor.stop)
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=120, message="the rest of the batch")
        rerun = self.assertNothingLostOrDoubled(task_ids)
        print(f"\nfault: worker SIGTERM mid-job: {BATCH} jobs, the running one finished, 0 lost, 0 doubled effects "
              f"({rerun} recorded twice), the rest done by the next worker {time.monotonic() - stopped_at:.1f} s after")

    def test_a_rabbitmq_restart_loses_nothing_and_launches_fail_clearly_meanwhile(self):
        """Queued and running jobs survive the broker; a launch while it is down is a clear 503,
        recorded REVOKED (never to run) rather than PENDING forever; workers reconnect by themselves."""
        from django.contrib.auth.models import User

        worker = Worker(concurrency=2).start()
        self.addCleanup(worker.stop)
        self.addCleanup(subprocess.run, ["rabbitmqctl", "-q", "start_app"], capture_output=True, timeout=120)
        _, token = api_token_create(user=User.objects.create_user("ops", is_staff=True), name="faults")
        task_ids = self.launch_batch(seconds=0.3)
        wait_for(lambda: self.done(task_ids) >= 5, message="a few jobs to finish")
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=120)
        stopped_at = time.monotonic()
        response = self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]},
                                    content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        self.assertEqual(response.status_code, 503, response.content)
        self.assertIn("The job queue is unavailable", response.json()["detail"])
        refused = TaskResult.objects.get(task_name="jobs.add")
        self.assertEqual(refused.status, "REVOKED")  # never to run, even had its message got through
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=180,
                 message=f"the batch after the broker came back; log:\n{worker.output()[-3000:]}")
        rerun = self.assertNothingLostOrDoubled(task_ids)
        print(f"\nfault: RabbitMQ stopped and started: {BATCH} jobs, 0 lost, 0 doubled effects ({rerun} recorded "
              f"twice), a launch meanwhile answered 503, all done {time.monotonic() - stopped_at:.1f} s after the stop")

    def test_a_postgresql_restart_loses_no_result(self):
        """Results that cannot be written while PostgreSQL is down are written once it is back."""
        worker = Worker(concurrency=2).start()
        self.addCleanup(worker.stop)
        task_ids = self.launch_batch(seconds=0.2)
        wait_for(lambda: self.done(task_ids) >= 5, message="a few jobs to finish")
        cluster = os.listdir("/etc/postgresql")[0]
        restarted_at = time.monotonic()
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
                       check=True, capture_output=True, timeout=60)
        connection.close()  # this test's own connection died with the server
        wait_for(lambda: self.done(task_ids) == BATCH, timeout=120,
                 message=f"the batch after the restart; worker log:\n{worker.output()[-3000:]}")
        rerun = self.assertNothingLostOrDoubled(task_ids)
        print(f"\nfault: PostgreSQL restart: {BATCH} jobs, 0 lost, 0 doubled effects ({rerun} recorded twice), "
              f"all done {time.monotonic() - restarted_at:.1f} s after the restart began")


@tag("integration", "faults")
class BeatFaultTests(TransactionTestCase):
    def test_a_beat_killed_and_restarted_doubles_nothing_and_resumes(self):
        """A crashed beat's lock expires; its replacement re-reads the table and goes on: no run is
        sent twice, and the runs due during the gap are sent once, late, when it takes over."""
        from django.conf import settings
        from django_celery_beat.models import IntervalSchedule, PeriodicTask


        worker = Worker(concurrency=2).start()
        self.addCleanup(worker.stop)
        task = PeriodicTask.objects.create(
            name="probe every 2 s", task="jobs.add", args="[1, 1]",
            interval=IntervalSchedule.objects.create(every=2, period="seconds"),
        )
        runs = TaskResult.objects.filter(periodic_task_name=task.name)
        first = Beat().start()
        wait_for(lambda: runs.count() >= 3, timeout=30, message="three runs")
        first.kill()
        killed_at, before = time.monotonic(), runs.count()
        second = Beat().start()
        self.addCleanup(second.stop)
        done = runs.filter(status="SUCCESS")
        wait_for(lambda: done.count() >= before + 3, timeout=settings.BEAT_LOCK_TIMEOUT + 20,
                 message=f"runs from the new beat; its log:\n{second.output()[-2000:]}")
        resumed = time.monotonic() - killed_at
        times = list(runs.order_by("date_created").values_list("date_created", flat=True))
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
        self.assertGreater(min(gaps), 1, gaps)  # none sent twice
        self.assertLess(max(gaps), settings.BEAT_LOCK_TIMEOUT + 2 + 3, gaps)
        # Every run sent succeeded, or is still on its way (beat goes on sending while we look).
        self.assertLessEqual(set(runs.values_list("status", flat=True)), {"SUCCESS", "PENDING", "STARTED"})
        print(f"\nfault: beat SIGKILLed and restarted: {len(times)} runs of a 2 s task, 0 doubled, "
              f"longest gap {max(gaps):.1f} s, sending again {resumed:.1f} s after the kill")


REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


def redis_up() -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", 6379)) == 0


@tag("integration", "faults")
class RedisDownTests(TransactionTestCase):
    """Redis holds the cache, the rate limiter's counts and beat's lock, not the job path."""

    def test_with_redis_stopped_jobs_launch_and_pages_and_the_admin_work(self):
        from django.contrib.auth.models import User

        self.addCleanup(cache_unanswered_forget)
        self.addCleanup(lambda: wait_for(redis_up, timeout=30, message="Redis to start again"))
        self.addCleanup(lambda: redis_up() or subprocess.run(REDIS_START, check=True, timeout=30))  # runs first
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=30)
        wait_for(lambda: not redis_up(), timeout=30, message="Redis to stop")

        self.client.force_login(User.objects.create_superuser("ops", password="pw"))
        with self.assertLogs("jobs.throttling", "WARNING") as logs:
            response = self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]},
                                        content_type="application/json")
        self.assertEqual(response.status_code, 202, response.content)
        self.assertIn("JOBS_LAUNCH_RATE not applied: the cache (Redis) is unreachable", logs.output[0])
        for url in (response["Location"], "/jobs/", f"/jobs/{response.json()['id']}/", "/jobs/new/",
                    "/admin/django_celery_results/taskresult/", "/admin/django_celery_beat/periodictask/"):
            with self.subTest(url=url):
                self.assertEqual(self.client.get(url).status_code, 200)
        with self.assertLogs("jobs.throttling", "WARNING"):
            page = self.client.post("/jobs/new/", {"job": "jobs.add", "x": "1", "y": "2"})
        self.assertEqual(page.status_code, 302)
        current_app.control.purge()  # no worker runs here: leave nothing for the next test's

    def test_with_redis_frozen_launches_wait_for_it_once_then_go_on(self):
        """A Redis that accepts connections and never answers (a stopped VM): the first launch waits
        for the cache's timeout (1 s), then Redis is not asked for a while (jobs/cache.py), and the
        launches go on uncounted by it. redis-py's own timeout, 5 s a call, made a launch wait 12 s."""
        from django.contrib.auth.models import User

        pid = int(subprocess.run(["redis-cli", "-p", "6379", "info", "server"], capture_output=True, text=True,
                                 check=True, timeout=30).stdout.split("process_id:")[1].split()[0])
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(cache_unanswered_forget)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        self.client.force_login(User.objects.create_user("ops"))
        took = []
        with self.assertLogs("jobs", "WARNING") as logs:
            for _ in range(3):
                started = time.monotonic()
                response = self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]},
                                            content_type="application/json")
                took.append(time.monotonic() - started)
                self.assertEqual(response.status_code, 202, response.content)
        self.assertIn("Timeout reading from socket", logs.output[0])
        self.assertIn("no answer from it in the last 5 s", logs.output[-1])
        self.assertLess(sum(took), 5, f"one timeout of a second, then none: {took}")
        os.kill(pid, signal.SIGCONT)
        current_app.control.purge()  # no worker runs here: leave nothing for the next test's
