"""Measure the limits (job(limit=...), job(unique=...)) on real workers: a global rate held across workers, the
cost to jobs with no limit, a burst waiting with no growth in the workers' memory, and unique launches at once."""
import os
import statistics
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from celery import current_app, states
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.exceptions import UnknownJob
from jobs.launching.services import job_launch
from jobs.limits.models import JobLimit, WaitingJob
from jobs.testing.databases import throwaway_database
from jobs.testing.processes import Worker, wait_for

QUEUE = "bench"  # its own queue, so a running worker of `make run` takes none of these jobs
PACED = "jobs.add_paced"  # the examples app's add, limited to a rate (changed here as an operator would)
UNLIMITED = "jobs.add"
UNIQUE = "jobs.build_report"  # the seeds' report: unique per span and day


def rss_bytes(leader: int) -> int:
    """The resident memory of a process group (a worker and its pool), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == leader:  # its process group
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def queued() -> int:
    with current_app.connection_for_write() as broker:
        return broker.default_channel.queue_declare(queue=QUEUE, passive=True).message_count


class Command(BaseCommand):
    help = ("Measure the limits on 2 workers of 2 processes each: a global rate over a minute, the cost to jobs "
            "with no limit (dispatchers on and off, side by side), a burst over its limit, unique launches at once.")

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=int, default=50, help="The global rate to hold, jobs a second.")
        parser.add_argument("--seconds", type=int, default=60, help="How long the rate is measured.")
        parser.add_argument("--jobs", type=int, default=2000, help="Jobs with no limit per overhead measurement.")
        parser.add_argument("--rounds", type=int, default=5, help="Overhead measurements per variant, interleaved.")
        parser.add_argument("--burst", type=int, default=10_000, help="Jobs sent at once over their limit.")
        parser.add_argument("--burst-rate", type=int, default=1000, help="The limit the burst is let go at, a second.")
        parser.add_argument("--phases", default="unique,overhead,rate,burst", help="Which to measure, comma-separated.")
        parser.add_argument("--clients", type=int, default=50, help="Concurrent clients launching unique jobs.")

    def handle(self, *args, rate, seconds, jobs, rounds, burst, burst_rate, clients, phases, **options):
        if min(rate, seconds, jobs, rounds, burst, burst_rate, clients) < 1:
            raise CommandError("Every figure must be at least 1.")
        try:
            for name in (PACED, UNLIMITED, UNIQUE):
                find_job(name)
        except UnknownJob as exc:
            raise CommandError(f"The benchmark runs the examples' and reports' jobs: install those apps. {exc}") from exc
        with ExitStack() as stack:
            stack.enter_context(throwaway_database("limits"))
            with current_app.connection_for_write() as broker:
                broker.default_channel.queue_delete(QUEUE)  # leftovers of an interrupted run
            phases = phases.split(",")
            if "unique" in phases:
                self.unique(clients)
            if "overhead" in phases:
                self.overhead(jobs, rounds)
            if "rate" in phases:
                self.rate(rate, seconds)
            if "burst" in phases:
                self.burst(burst, burst_rate)

    def workers(self, **environment) -> list[Worker]:
        return [Worker(concurrency=2, queues=QUEUE, environment=environment).start() for _ in range(2)]

    def stop(self, workers):
        for worker in workers:
            worker.stop()

    def limit_set(self, rate: str) -> None:
        """As an operator does in the admin (Job limits); the workers read it within a second."""
        JobLimit.objects.update_or_create(job_name=PACED, defaults={"rate": rate})
        time.sleep(1.1)

    def send(self, name: str, count: int) -> None:
        task = find_job(name)
        for n in range(count):
            task.apply_async(kwargs={"x": n, "y": n}, queue=QUEUE)

    def done(self, name: str) -> int:
        return TaskResult.objects.filter(task_name=name, status=states.SUCCESS).count()

    def unique(self, clients: int) -> None:
        """Every client launches the same 10 reports at once: exactly one job per key."""
        start, launched = threading.Barrier(clients), []

        def client():
            try:
                start.wait()
                for days in range(1, 11):
                    launched.append(job_launch(name=UNIQUE, kwargs={"days": days}, options={"queue": QUEUE}).launched)
            finally:
                connection.close()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        per_key = TaskResult.objects.filter(task_name=UNIQUE).count()
        self.stdout.write(f"\nUnique launches: {clients} clients x 10 keys at once = {len(launched)} launches, "
                          f"{sum(launched)} launched, {per_key} jobs recorded (goal: 10, one per key)")
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_purge(QUEUE)
        TaskResult.objects.filter(task_name=UNIQUE).delete()

    def overhead(self, jobs: int, rounds: int) -> None:
        """Jobs with no limit, on workers dispatching limited jobs and on workers that do not, interleaved."""
        variants = {"dispatchers on": {}, "dispatchers off": {"JOBS_LIMITS_DISPATCH": "false"}}
        figures = {name: [] for name in variants}
        for _ in range(rounds):
            for name, environment in variants.items():
                workers = self.workers(**environment)
                try:
                    self.run_unlimited(min(200, jobs))  # warm up: pool processes, connections, imports
                    started = time.perf_counter()
                    self.run_unlimited(jobs)
                    figures[name].append(jobs / (time.perf_counter() - started))
                finally:
                    self.stop(workers)
                self.stderr.write(f"{name}: {figures[name][-1]:.0f} jobs/s")
        self.stdout.write(f"\nJobs with no limit, {jobs} per run, median of {rounds} interleaved rounds:")
        for name, rates in figures.items():
            self.stdout.write(f"  {name:<16} {statistics.median(rates):6.0f} jobs/s  (rounds: "
                              f"{', '.join(f'{rate:.0f}' for rate in rates)})")
        ratios = [on / off for on, off in zip(*figures.values(), strict=True)]
        self.stdout.write(f"  on/off, round by round: {', '.join(f'{ratio:.2f}' for ratio in ratios)}; overhead (1 - "
                          f"the median ratio) {100 * (1 - statistics.median(ratios)):+.1f}% (goal: under 3%)")

    def run_unlimited(self, count: int) -> None:
        before = self.done(UNLIMITED)
        self.send(UNLIMITED, count)
        wait_for(lambda: self.done(UNLIMITED) >= before + count, timeout=600, interval=0.05)

    def rate(self, rate: int, seconds: int) -> None:
        """More jobs than the rate lets through in `seconds`, sent at once: how fast they start."""
        self.limit_set(f"{rate}/s")
        workers = self.workers()
        try:
            self.send(PACED, rate * seconds + rate)
            time.sleep(seconds + 2)
        finally:
            self.stop(workers)
        starts = sorted(TaskResult.objects.filter(task_name=PACED, date_started__isnull=False)
                        .values_list("date_started", flat=True))
        window = [start for start in starts if start < starts[0] + timedelta(seconds=seconds)]
        per_second = [sum(1 for other in window if start <= other < start + timedelta(seconds=1)) for start in window]
        achieved = len(window) / seconds
        self.stdout.write(f"\nA global limit of {rate}/s on 2 workers x 2 processes, over {seconds} s: {len(window)} "
                          f"started, {achieved:.1f}/s ({100 * (achieved / rate - 1):+.1f}%, goal within 5%); "
                          f"the busiest second {max(per_second)}, the quietest {min(per_second[:-rate])}")
        WaitingJob.objects.all().delete()
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_purge(QUEUE)
        TaskResult.objects.filter(task_name=PACED).delete()

    def burst(self, count: int, rate: int) -> None:
        """`count` jobs sent while their limit lets none through (1/h, as an operator holding them back would):
        the workers' memory and the broker's queue while they wait; then the limit raised to `rate`, and every
        one done."""
        self.limit_set("1/h")
        workers = self.workers()
        try:
            time.sleep(2)
            before = sum(rss_bytes(worker.process.pid) for worker in workers)
            started = time.perf_counter()
            self.send(PACED, count)
            sent = time.perf_counter() - started
            samples = []
            for _ in range(5):  # while they all wait
                samples.append((sum(rss_bytes(worker.process.pid) for worker in workers), queued(),
                                WaitingJob.objects.filter(dispatched_at=None).count()))
                time.sleep(2)
            self.limit_set(f"{rate}/s")
            released = time.perf_counter()
            while self.done(PACED) < count and time.perf_counter() - released < count / rate * 3 + 120:
                time.sleep(0.5)
            drained = time.perf_counter() - released
            after = sum(rss_bytes(worker.process.pid) for worker in workers)
        finally:
            self.stop(workers)
        peak_rss, peak_queue, peak_waiting = (max(sample[index] for sample in samples) for index in range(3))
        self.stdout.write(
            f"\nA burst of {count:,} jobs over their limit: sent in {sent:.0f} s ({1000 * sent / count:.1f} ms each); "
            f"while held (1/h) {peak_waiting:,} waited in the database and at most {peak_queue} in the broker's queue; "
            f"the workers' memory {before / 2**20:.0f} MiB before, at most {peak_rss / 2**20:.0f} MiB while they waited "
            f"({100 * (peak_rss / before - 1):+.1f}%), {after / 2**20:.0f} MiB after; the limit raised to {rate}/s: "
            f"{self.done(PACED):,} done in {drained:.0f} s")
