"""Limits on real workers, several at once, as production breaks: a global rate across workers, one slot per
owner while the worker holding it is SIGKILLed, and PostgreSQL (which holds the limits' state) restarted
mid-run. Nothing over its limit, no job lost or run twice, no slot held past its bound."""
import os
import subprocess
import time
from datetime import datetime, timedelta
from itertools import pairwise

from celery import states
from django.db import connection
from django.test import TransactionTestCase, tag
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.launching.services import job_launch
from jobs.limits.models import WaitingJob
from jobs.records.models import JobRecord
from jobs.testing.processes import Worker, wait_for

# Heartbeats every second: a killed worker's run lease (3 heartbeats) runs out in 3 s, not 30.
FAST = {"WORKER_HEARTBEAT_SECONDS": "1"}


def most_in_a_second(times: list) -> int:
    """The most of these instants in any one second."""
    times = sorted(times)
    return max(sum(1 for other in times[index:] if other - start < timedelta(seconds=1))
               for index, start in enumerate(times))


@tag("integration")
class LimitsOnWorkersTests(TransactionTestCase):
    def setUp(self):
        self.workers = [Worker(concurrency=2, environment=FAST).start() for _ in range(2)]
        for worker in self.workers:
            self.addCleanup(worker.stop)

    def logs(self) -> str:
        return "\n".join(worker.output()[-3000:] for worker in self.workers)

    def done(self, task_ids) -> int:
        return TaskResult.objects.filter(task_id__in=task_ids, status=states.SUCCESS).count()

    def fetch_batch(self, host: str, count: int) -> list[str]:
        return [job_launch(name="testapp.fetch_politely", kwargs={"url": f"https://{host}/{n}"}).task_id
                for n in range(count)]

    def assertRateHeld(self, host: str, count: int, once: bool = True):
        """Each job ran (once: no earlier delivery), and never more than 10 a second started (the burst of 2 and
        the gap between a dispatch and a start on a busy worker allow 2 more)."""
        records = JobRecord.objects.filter(result__task_kwargs__contains=f"https://{host}/")
        self.assertEqual(records.filter(result__status=states.SUCCESS).count(), count)
        if once:
            self.assertEqual([record.deliveries for record in records if record.deliveries], [])
        starts = [started for record in records.select_related("result") for started in
                  [record.result.date_started, *(datetime.fromisoformat(delivery["started_at"])
                                                 for delivery in record.deliveries)]]
        self.assertLessEqual(most_in_a_second(starts), 14)
        self.assertGreaterEqual(max(starts) - min(starts), timedelta(seconds=(count - 2) / 10 - 0.5))
        return most_in_a_second(starts)

    def test_a_rate_holds_across_workers_per_host(self):
        task_ids = self.fetch_batch("a.example", 40) + self.fetch_batch("b.example", 10)
        wait_for(lambda: self.done(task_ids) == 50, timeout=60, message=f"the batch; logs:\n{self.logs()}")
        busiest = self.assertRateHeld("a.example", 40)
        self.assertRateHeld("b.example", 10)
        # The other host did not wait behind the first: its jobs were done long before a.example's.
        b_last, a_last = (max(TaskResult.objects.filter(task_id__in=ids).values_list("date_started", flat=True))
                          for ids in (task_ids[40:], task_ids[:40]))
        self.assertLess(b_last, a_last - timedelta(seconds=2))
        self.assertFalse(WaitingJob.objects.exists())
        print(f"\nlimits: 40 jobs at 10/s on one host across 2 workers: at most {busiest} started in a second")

    def test_a_worker_killed_while_it_holds_the_slot_frees_it_and_nothing_overlaps(self):
        ones = [job_launch(name="testapp.import_for", kwargs={"owner": 1, "label": str(n), "seconds": 1.5}).task_id
                for n in range(4)]
        twos = [job_launch(name="testapp.import_for", kwargs={"owner": 2, "label": str(n), "seconds": 1.5}).task_id
                for n in range(2)]
        first = wait_for(lambda: TaskResult.objects.filter(task_id=ones[0], status=states.STARTED).first(),
                         message=f"owner 1's first job to start; logs:\n{self.logs()}")
        holder = next(worker for worker in self.workers if worker.name == first.worker)
        time.sleep(0.5)
        holder.kill()
        killed_at = timezone.now()
        self.workers.remove(holder)
        self.workers.append(Worker(concurrency=2, environment=FAST).start())
        self.addCleanup(self.workers[-1].stop)
        wait_for(lambda: self.done(ones + twos) == 6, timeout=90, message=f"every job; logs:\n{self.logs()}")
        # Each run of owner 1's jobs: (start, end, job); the delivery cut short by the kill ended with it.
        runs = []
        for record in JobRecord.objects.filter(result__task_id__in=ones).select_related("result"):
            runs.append((record.result.date_started, record.result.date_done, record.result.task_id))
            runs += [(datetime.fromisoformat(delivery["started_at"]), killed_at, record.result.task_id)
                     for delivery in record.deliveries]
        self.assertEqual(len(runs), 5)  # four jobs, one of them started twice: cut short, then run again
        intervals = sorted(runs)
        for (_, ended, _), (started, _, _) in pairwise(intervals):
            self.assertLessEqual(ended, started, f"owner 1 had two running at once: {intervals}")
        # The killed job kept its slot: the next of owner 1 to start was that job again (its redelivery, once
        # the run lease of 3 heartbeats ran out), not the next in line; and within its bound: the lease and the
        # 5 s before a job delivered while it may still run elsewhere is tried again.
        rerun_started, _, rerun = min(run for run in runs if run[0] > killed_at)
        self.assertEqual(rerun, ones[0], f"another job ran while the killed job held the slot: {intervals}")
        self.assertLess(rerun_started - killed_at, timedelta(seconds=15))
        # Owner 2 was not held up by owner 1's slot: its jobs ran beside them.
        twos_done = max(TaskResult.objects.filter(task_id__in=twos).values_list("date_done", flat=True))
        self.assertLess(twos_done, max(ended for _, ended, _ in intervals))
        self.assertFalse(WaitingJob.objects.exists())  # no slot left held
        print(f"\nlimits: the worker holding owner 1's slot SIGKILLed; the job ran again "
              f"{(rerun_started - killed_at).total_seconds():.1f} s later, none side by side")

    def test_a_postgresql_restart_loses_nothing_and_exceeds_nothing(self):
        if os.geteuid() != 0:
            self.skipTest("restarting PostgreSQL takes pg_ctlcluster as root, as CI runs")
        task_ids = self.fetch_batch("c.example", 40)
        wait_for(lambda: self.done(task_ids) >= 5, message=f"a few jobs; logs:\n{self.logs()}")
        cluster = os.listdir("/etc/postgresql")[0]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
                       check=True, capture_output=True, timeout=60)
        connection.close()  # this test's own connection died with the server
        wait_for(lambda: self.done(task_ids) == 40, timeout=120, message=f"the batch; logs:\n{self.logs()}")
        # A job whose outcome could not be stored while the server was down may run again (its effect is
        # idempotent; tests/site/test_faults.py counts those): each ran, none was lost.
        busiest = self.assertRateHeld("c.example", 40, once=False)
        print(f"\nlimits: PostgreSQL restarted mid-run: 40 jobs, each run once, at most {busiest} started in a second")
