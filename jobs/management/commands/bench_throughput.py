import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, closing

from celery import current_app
from celery.result import ResultSet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.tasks import task_backends
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.exceptions import UnknownJob
from jobs.testing.cluster import RabbitCluster
from jobs.testing.databases import database_copy, database_url, results_fill, throwaway_database
from jobs.testing.processes import Worker, wait_for

QUEUE = "bench"  # its own queue, so a running worker of `make run` takes none of these tasks
JOB = "jobs.add"  # the examples app's add(x, y): the smallest job there is

OURS = "PostgreSQL (this project)"
RPC = "rpc://"
# The same job declared with Django's tasks API (examples.tasks.add_numbers) and enqueued with .enqueue().
DJANGO_TASK = "examples.tasks.add_numbers"
DJANGO_TASKS = "PostgreSQL (this project), django.tasks"
STARTED_AT_START = "PostgreSQL (this project), STARTED written at every start"
RECORD_BEFORE = "PostgreSQL (this project), record written before the publish"
VARIANTS = {
    OURS: {"CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend"},
    DJANGO_TASKS: {"CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend", "BENCH_API": "django.tasks"},
    RPC: {"CELERY_RESULT_BACKEND": "rpc://"},
    # This project with every run marked STARTED as it starts, as before JOBS_STARTED_AFTER_SECONDS.
    STARTED_AT_START: {"CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend", "JOBS_STARTED_AFTER_SECONDS": "0"},
    # This project with each record written before its message is published, not alongside it.
    RECORD_BEFORE: {"CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend", "JOBS_RECORD_ALONGSIDE": "false"},
    "PostgreSQL, stock django-db backend": {"CELERY_RESULT_BACKEND": "django-db"},
    # Stock Celery: the stock backend, and a new database connection for every task.
    "PostgreSQL, stock django-db and Celery": {"CELERY_RESULT_BACKEND": "django-db", "DATABASE_CONN_MAX_AGE": "0"},
}
# With --cluster: this project on a three-node RabbitMQ cluster with quorum queues (its broker URL
# is added once the cluster is up).
CLUSTER = "PostgreSQL (this project), quorum queues on 3 nodes"
CLUSTER_VARIANT = {"CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend", "BROKER_QUEUE_TYPE": "quorum"}
# With --rows N: this project against a copy of the database whose results table already holds N
# results, with the job ids this project makes (time-ordered) and with Celery's own (random).
FULL = "PostgreSQL (this project), full table"
FULL_RANDOM_IDS = "PostgreSQL (this project), full table, Celery's random ids"


class Command(BaseCommand):
    help = (
        "Measure end-to-end throughput (publish, run on a real worker, result stored and seen) with "
        "results in PostgreSQL beside the same worker with rpc:// results, in one run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=2000, help="Tasks per measurement.")
        parser.add_argument("--rounds", type=int, default=3, help="Measurements per variant, interleaved.")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker pool processes.")
        parser.add_argument("--cluster", action="store_true",
                            help="Also measure on a three-node RabbitMQ cluster with quorum queues, started here.")
        parser.add_argument("--rows", type=int, default=0, help=
                            "Also measure against a results table already holding this many results "
                            "(10,000,000 take about 10 minutes to write).")
        parser.add_argument("--busy", type=int, default=0, help=
                            "Processes that each keep a core busy for the whole run (other work on the "
                            "machine: 1 on a 2-core machine is the under-load figure).")
        parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help=
                            f"Measure only this variant (repeatable) beside {OURS} and {RPC}, which are always measured.")
        parser.add_argument("--measure", choices=sorted([*VARIANTS, CLUSTER, FULL, FULL_RANDOM_IDS]), help=
                            "Internal: measure one variant in this process (set up by the parent).")

    def handle(self, *args, tasks, rounds, concurrency, measure, cluster, rows, busy, variant, **options):
        if tasks < 1 or rounds < 1 or concurrency < 1 or rows < 0 or busy < 0:
            raise CommandError("--tasks, --rounds and --concurrency must be at least 1, --rows and --busy at least 0.")
        try:
            find_job(JOB)
        except UnknownJob as exc:
            raise CommandError(f"The benchmark runs {JOB} (the examples app): install that app. {exc}") from exc
        if measure:
            seconds = self.measure(tasks, concurrency, random_ids=measure == FULL_RANDOM_IDS)
            self.stdout.write(json.dumps({"seconds": seconds}))
            return

        variants = {name: environment for name, environment in VARIANTS.items()
                    if not variant or name in (*variant, OURS, RPC)}
        with ExitStack() as stack:
            for _ in range(busy):
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                stack.callback(spinner.wait)
                stack.callback(spinner.kill)
            if cluster:
                nodes = stack.enter_context(closing(RabbitCluster().start()))
                variants[CLUSTER] = {**CLUSTER_VARIANT, "CELERY_BROKER_URL": nodes.url}
            stack.enter_context(throwaway_database("throughput"))  # the same empty tables for every run
            empty = database_url()
            if rows:
                stack.enter_context(database_copy("rows"))
                self.stderr.write(f"writing {rows:,} results…")
                results_fill(1, rows, now=timezone.now())
                variants[FULL] = variants[FULL_RANDOM_IDS] = {**VARIANTS[OURS], "DATABASE_URL": database_url()}
            figures = {name: [] for name in variants}
            self.run_rounds(variants, figures, tasks, rounds, concurrency, empty)
        self.report(figures, tasks, rounds, concurrency)

    def run_rounds(self, variants, figures, tasks, rounds, concurrency, database):
        for round_number in range(1, rounds + 1):
            for name, environment in variants.items():
                result = subprocess.run(
                    [sys.executable, "manage.py", "bench_throughput", "--measure", name,
                     "--tasks", str(tasks), "--concurrency", str(concurrency)],
                    cwd=settings.BASE_DIR, env={**os.environ, "DATABASE_URL": database, **environment},
                    capture_output=True, text=True,
                )
                if result.returncode:
                    raise CommandError(f"Measuring {name} failed:\n{result.stderr[-3000:]}")
                rate = tasks / json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
                figures[name].append(rate)
                self.stderr.write(f"round {round_number}: {name}: {rate:.0f} tasks/s")

    def report(self, figures, tasks, rounds, concurrency):
        self.stdout.write(
            f"\nEnd-to-end throughput: {tasks} x {JOB} per run, worker with {concurrency} prefork "
            f"processes, median of {rounds} interleaved rounds\n"
        )
        medians = {name: statistics.median(rates) for name, rates in figures.items()}
        for name, rates in figures.items():
            self.stdout.write(f"  {name:<60} {medians[name]:7.0f} tasks/s   (rounds: "
                              f"{', '.join(f'{rate:.0f}' for rate in rates)})")
        self.stdout.write(f"\nRatio to {RPC} (target for {OURS}: at least 0.9)")
        for name in figures:
            self.stdout.write(f"  {name:<60} {medians[name] / medians[RPC]:7.2f}")
        if DJANGO_TASKS in figures and OURS in figures:
            self.stdout.write(f"\nRatio to {OURS} (target for {DJANGO_TASKS}: at least 0.95)")
            self.stdout.write(f"  {DJANGO_TASKS:<60} {medians[DJANGO_TASKS] / medians[OURS]:7.2f}")
        if FULL in figures:
            self.stdout.write(f"\nRatio to {OURS}, empty table (target: at least 0.85)")
            for name in (FULL, FULL_RANDOM_IDS):
                self.stdout.write(f"  {name:<60} {medians[name] / medians[OURS]:7.2f}")

    def measure(self, tasks: int, concurrency: int, random_ids: bool) -> float:
        """Seconds from the first publish until every result is stored and seen by the client."""
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_delete(QUEUE)  # leftovers of an interrupted run
        worker = Worker(concurrency=concurrency, queues=QUEUE).start()
        try:
            self.run_batch(min(200, tasks), random_ids)  # warm up: pool processes, connections, imports
            started = time.perf_counter()
            self.run_batch(tasks, random_ids)
            return time.perf_counter() - started
        finally:
            worker.stop()

    def run_batch(self, count: int, random_ids: bool) -> None:
        task = find_job(JOB)
        last = TaskResult.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        if os.environ.get("BENCH_API") == "django.tasks":
            task_backends["default"].queues.add(QUEUE)  # the benchmark's own queue, as for the others
            django_task = find_job(DJANGO_TASK).django_task.using(queue_name=QUEUE)
            results = [django_task.enqueue(n, n) for n in range(count)]
        else:
            results = [task.apply_async(kwargs={"x": n, "y": n}, queue=QUEUE,
                                        task_id=str(uuid.uuid4()) if random_ids else None) for n in range(count)]
        if current_app.conf.result_backend != RPC:
            wait_for(lambda: self.succeeded_since(last) >= count, timeout=600, interval=0.05,
                     message="results in PostgreSQL")
        else:
            ResultSet(results).join(timeout=600)

    def succeeded_since(self, last: int) -> int:
        """How many rows after id `last` (this batch's) are SUCCESS.

        The batch's rows are read by their primary-key range first (MATERIALIZED), whatever the
        table's size, indexes and statistics: left to the planner, the same count picked the status
        and job-name indexes on stale statistics and took 35 ms of PostgreSQL's CPU every 50 ms,
        which the database variants paid for and rpc:// did not.
        """
        sql = (f"WITH batch AS MATERIALIZED (SELECT status FROM {TaskResult._meta.db_table} WHERE id > %s) "
               "SELECT count(*) FROM batch WHERE status = %s")
        with connection.cursor() as cursor:
            cursor.execute(sql, [last, "SUCCESS"])
            return cursor.fetchone()[0]
