"""Past one broker node: a real three-node RabbitMQ cluster, quorum queues, jobs launched through
the API by a web process and run by two workers, while a node is stopped. Every accepted job ends
SUCCESS with its effect once; a launch during the failover is accepted or answers 503 (its record
REVOKED, and it never runs); nothing is left stuck."""
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase, tag
from django_celery_results.models import TaskResult

from accounts.services import api_token_create
from examples.models import Probe
from jobs.testing.cluster import RabbitCluster, rabbitmqctl
from jobs.testing.databases import database_url
from jobs.testing.processes import Worker, free_port, wait_for
from tests.local_http import LocalServer

JOBS = 40
RUN_SECONDS = 0.2  # how long each probe job runs



@tag("integration", "faults", "cluster")
class ClusterFaultTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = RabbitCluster().start()
        cls.addClassCleanup(cls.cluster.close)
        cls.environment = {"CELERY_BROKER_URL": cls.cluster.url, "BROKER_QUEUE_TYPE": "quorum",
                           "JOBS_LAUNCH_RATE": "100000/m", "FETCH_ALLOWED_NETWORKS": "127.0.0.1/32"}

    def setUp(self):
        self.workers = []
        for _ in range(2):  # each stopped after the test, whatever happens next (a worker left running outlives it)
            self.workers.append(Worker(concurrency=2, environment=self.environment).start())
            self.addCleanup(self.workers[-1].stop)
        for worker in self.workers:
            # Started with --queues default on a fresh cluster, where the other queues do not exist
            # yet: the worker declares them, so Celery's delayed-delivery setup binds every one.
            self.assertNotIn("Failed to setup delayed delivery", worker.output())
            self.assertNotIn("Failed to bind queue", worker.output())
        self.web = self.start_web()
        _, token = api_token_create(user=User.objects.create_superuser("ops", password="pw"), name="cluster")
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.addCleanup(self.http.close)

    def start_web(self):
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        log = open(os.devnull, "w")  # noqa: SIM115 (closed with the process)
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=settings.BASE_DIR,
            env={**os.environ, **self.environment, "DATABASE_URL": database_url()}, stdout=log, stderr=log,
        )
        self.addCleanup(log.close)
        self.addCleanup(web.wait, 30)
        self.addCleanup(web.terminate)
        wait_for(lambda: self.reachable(), timeout=60, message="the web process to listen")
        return web

    def reachable(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/api/jobs/", timeout=2).status_code == 401
        except httpx.TransportError:
            return False

    def launch_during(self, fault, recover) -> dict:
        """Launch JOBS probe jobs through the API, one every 0.1 s; the fault strikes after a
        quarter of them and is mended after three quarters. Returns figures for the report."""
        answers = {}
        launched = threading.Event()

        def launch():
            for n in range(JOBS):
                key = f"cluster-{uuid.uuid4().hex[:8]}-{n}"
                response = self.http.post("/api/jobs/", json={"task": "jobs.probe", "args": [key, RUN_SECONDS]})
                body = response.json()  # a 503 names the job it did not enqueue in its detail
                named = re.search(r"job ([0-9a-f-]{36})", body.get("detail", ""))
                answers[key] = (response.status_code, body.get("id") or (named and named.group(1)))
                if n == JOBS // 4:
                    launched.set()
                time.sleep(0.1)

        thread = threading.Thread(target=launch)
        thread.start()
        launched.wait(60)
        struck_at = time.monotonic()
        fault()
        time.sleep(3)
        recover()
        thread.join(120)
        accepted = {key: job_id for key, (status, job_id) in answers.items() if status == 202}
        refused = {key: job_id for key, (status, job_id) in answers.items() if status != 202}
        self.assertEqual(len(answers), JOBS)
        self.assertTrue(all(status == 503 for status, _ in (answers[key] for key in refused)), answers)
        done = TaskResult.objects.filter(task_id__in=accepted.values(), status="SUCCESS")
        wait_for(lambda: done.count() == len(accepted), timeout=240, interval=0.5,
                 message=f"every accepted job to succeed; worker logs:\n{self.workers[0].output()[-3000:]}")
        recovered = time.monotonic() - struck_at
        probes = {probe.key: probe for probe in Probe.objects.filter(key__in=[*accepted, *refused])}
        self.assertEqual(set(probes), set(accepted))  # every effect there, once per key; none of a refused one
        # Each run records its key as it ends, RUN_SECONDS after it began: two runs of a job that
        # overlapped end less than RUN_SECONDS apart. A run again after the first was stopped (a
        # worker whose connection died stops its job; its delivery goes to another) is at-least-once
        # delivery of an idempotent job, and is counted, not refused.
        overlapping = [key for key, probe in probes.items()
                       if probe.runs > 1 and (probe.last_at - probe.first_at).total_seconds() < RUN_SECONDS]
        self.assertEqual(overlapping, [], "runs of one job at the same time")
        for job_id in refused.values():
            self.assertEqual(TaskResult.objects.get(task_id=job_id).status, "REVOKED")
        stuck = TaskResult.objects.filter(task_name="jobs.probe").exclude(status__in=["SUCCESS", "REVOKED"])
        self.assertFalse(stuck.exists(), list(stuck.values_list("task_id", "status")))
        return {"accepted": len(accepted), "refused": len(refused), "recovered": recovered,
                "run twice": sum(1 for probe in probes.values() if probe.runs > 1)}

    def report(self, fault, figures):
        print(f"\nfault: {fault}: {JOBS} jobs launched through the API, {figures['accepted']} accepted, "
              f"{figures['refused']} answered 503 (recorded REVOKED, never run), 0 lost, 0 doubled effects, 0 runs at "
              f"the same time ({figures['run twice']} run again after its first run was stopped), "
              f"all done {figures['recovered']:.1f} s after the fault", file=sys.stderr)

    def test_the_job_queues_are_replicated_quorum_queues_with_a_delivery_limit(self):
        self.http.post("/api/jobs/", json={"task": "jobs.add", "args": [1, 2]})  # queues are declared by now
        queues = {row["name"]: row for row in json.loads(rabbitmqctl(
            self.cluster.nodes[0], "list_queues", "name", "type", "arguments", "members", "--formatter", "json"))}
        for name in ("default", "dead-letter"):
            with self.subTest(queue=name):
                self.assertEqual(queues[name]["type"], "quorum")
                self.assertEqual(len(queues[name]["members"]), 3)
        # rabbitmqctl lists arguments as [name, type, value] triples.
        arguments = {name: value for name, _, value in queues["default"]["arguments"]}
        self.assertEqual((arguments["x-delivery-limit"], arguments["x-dead-letter-strategy"]), (6, "at-least-once"))

    def test_retry_delays_work_on_quorum_queues(self):
        """Celery's native delayed delivery: a fetch that fails twice is retried after its backoff."""
        with LocalServer() as server:
            response = self.http.post("/api/jobs/", json={"task": "jobs.fetch_url",
                                                          "args": [server.url("/flaky-cluster")]})
            job_id = response.json()["id"]
            done = TaskResult.objects.filter(task_id=job_id, status="SUCCESS")
            wait_for(done.exists, timeout=60, message=f"the retried fetch; log:\n{self.workers[0].output()[-3000:]}")
        self.assertEqual(self.http.get(f"/api/jobs/{job_id}/").json()["attempt"], 3)

    def test_stopping_the_node_that_leads_the_job_queue_loses_nothing(self):
        leader = self.cluster.leader("default")
        figures = self.launch_during(lambda: self.cluster.stop_node(leader), lambda: self.cluster.start_node(leader))
        self.report("the quorum queue's leader node stopped and started", figures)

    def test_a_crash_of_the_node_that_leads_the_job_queue_loses_nothing_and_runs_nothing_twice(self):
        """SIGKILL of the leader's Erlang VM mid-launches, started again 3 s later: the workers'
        connections to it die without a word, RabbitMQ hands their unacknowledged jobs to the other
        worker while they may still run them, and launches' confirms are lost in flight."""
        leader = self.cluster.leader("default")
        figures = self.launch_during(lambda: self.cluster.kill_node(leader), lambda: self.cluster.restart_node(leader))
        self.report("the quorum queue's leader node crashed (SIGKILL) and started again", figures)

    def test_a_crash_of_a_follower_loses_nothing_and_runs_nothing_twice(self):
        follower = (self.cluster.leader("default") + 1) % len(self.cluster.nodes)
        figures = self.launch_during(lambda: self.cluster.kill_node(follower),
                                     lambda: self.cluster.restart_node(follower))
        self.report("a follower node crashed (SIGKILL) and started again", figures)

    def test_stopping_and_restarting_a_follower_loses_nothing(self):
        follower = (self.cluster.leader("default") + 1) % len(self.cluster.nodes)
        figures = self.launch_during(lambda: self.cluster.stop_node(follower),
                                     lambda: self.cluster.start_node(follower))
        self.report("a follower node stopped and started", figures)
