"""This project against the job systems a Django team could pick instead, on one machine, in one run.

    pip install -r benchmarks/requirements.txt
    python benchmarks/bench_peers.py [--jobs 2000] [--rounds 3] [--latency 200] [--peers NAME ...]

For each round, each system in turn gets a fresh database of its own (created here, migrated with its
own migrations) on the local PostgreSQL, 2 worker processes started as its documentation starts them,
then: a warm-up of 200 jobs; `--jobs` no-op jobs enqueued one after another and run to completion
(jobs per second, from the first enqueue until the last job is done in its store); then `--latency`
jobs one at a time, each timed from its enqueue until its store says it is done (read every
millisecond). Every system stores each job's outcome in PostgreSQL, where its users keep it.
Printed: a Markdown table with the median across rounds, every round's figure, and ratios to this
project. Each round starts with the next system in turn.
"""
import argparse
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "this project, @job"


class Peer:
    """How one system is set up, started, fed and read. Subclasses fill in the blanks."""

    settings = "benchmarks.settings"
    package = ""  # whose version the report shows
    python = sys.executable  # the interpreter of its virtualenv

    def __init__(self, name: str):
        self.name = name

    def environment(self, database_url: str) -> dict[str, str]:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings, "BENCH_PEER": self.name,
                "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}

    def migrate(self) -> list[str]:
        return [self.python, "-m", "django", "migrate", "--verbosity", "0"]

    def workers(self) -> list[list[str]]:
        """The commands that start its workers: 2 processes that run jobs, in all."""
        raise NotImplementedError

    def prepare(self) -> None:
        """In the measuring process, before its workers start: clear what an interrupted run left."""

    def send(self, number: int) -> str:
        """Enqueue one no-op job; its id."""
        raise NotImplementedError

    def finished(self) -> int:
        """How many jobs its store holds as done (successfully), all told."""
        raise NotImplementedError

    def done(self, job_id: str) -> bool:
        raise NotImplementedError


class CeleryResults(Peer):
    """Outcomes in django-celery-results' table (this project's backend writes the same table)."""

    def finished(self) -> int:
        from django_celery_results.models import TaskResult
        return TaskResult.objects.filter(status="SUCCESS").count()

    def done(self, job_id: str) -> bool:
        from django_celery_results.models import TaskResult
        return TaskResult.objects.filter(task_id=job_id, status="SUCCESS").exists()

    def prepare(self) -> None:
        from celery import current_app
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_delete(self.queue)

    app = "benchmarks.celery_app"  # the peers' Celery app; this project's is its own

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "celery", "-A", self.app, "worker", "--queues", self.queue,
                 "--concurrency", "2", "--loglevel", "WARNING"]]


class ProjectJob(CeleryResults):
    """This project: the job declared with `@job`, launched with `.apply_async()`, as the seeds do."""

    settings = "site_config.settings"
    app = "site_config"
    queue = "bench"  # its own queue, so a running `make run` takes none of these

    def environment(self, database_url: str) -> dict[str, str]:
        return {**super().environment(database_url), "CELERY_RESULT_BACKEND": "jobs.results:DatabaseBackend"}

    def migrate(self) -> list[str]:
        return [sys.executable, "manage.py", "migrate", "--verbosity", "0"]

    def send(self, number: int) -> str:
        from jobs.catalog import find_job
        return find_job("jobs.add").apply_async(kwargs={"x": number, "y": number}, queue=self.queue).id


class ProjectTask(ProjectJob):
    """This project: the same job declared with Django's `@task`, enqueued with `.enqueue()`."""

    def prepare(self) -> None:
        from django.tasks import task_backends
        super().prepare()
        task_backends["default"].queues.add(self.queue)

    def send(self, number: int) -> str:
        from examples.tasks import add_numbers
        return add_numbers.using(queue_name=self.queue).enqueue(number, number).id


class DjangoTasksCelery(CeleryResults):
    """django-tasks-celery: Django's API onto stock Celery, outcomes in django-celery-results."""

    package = "django-tasks-celery"
    queue = "bench_peers"

    def prepare(self) -> None:
        import benchmarks.celery_app  # noqa: F401  (makes it Celery's current app)
        super().prepare()

    def send(self, number: int) -> str:
        from benchmarks.tasks import add
        return add.enqueue(number, number).id


class CeleryRedis(CeleryResults):
    """Celery as most people run it: a Redis broker, outcomes in django-celery-results' table."""

    package = "celery"
    queue = "bench_peers"

    def prepare(self) -> None:
        from benchmarks.celery_app import app
        app.control.purge()  # what an interrupted run left in its Redis queue

    def send(self, number: int) -> str:
        from benchmarks.celery_tasks import add
        return add.apply_async(kwargs={"x": number, "y": number}).id


class DjangoRQ(Peer):
    """django-rq: RQ's workers (two `rqworker` processes, each forking a work horse per job, RQ's
    default), jobs and outcomes in Redis, where RQ keeps them."""

    package = "django-rq"

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "django", "rqworker", "default"]] * 2

    def prepare(self) -> None:
        import django_rq
        django_rq.get_queue("default").empty()
        django_rq.get_connection("default").flushdb()  # its own Redis database: registries of earlier runs

    def send(self, number: int) -> str:
        import django_rq
        return django_rq.enqueue("benchmarks.functions.add", number, number).id

    def finished(self) -> int:
        import django_rq
        return django_rq.get_queue("default").finished_job_registry.count

    def done(self, job_id: str) -> bool:
        import django_rq
        from rq.job import Job
        return Job.fetch(job_id, connection=django_rq.get_connection("default")).get_status() == "finished"


class DjangoTasksDB(Peer):
    """django-tasks-db: Django's API, jobs as rows of a table that its `db_worker` polls (one task at a
    time per worker process, so two processes; every second when idle, its default)."""

    package = "django-tasks-db"

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "django", "db_worker", "--no-reload"]] * 2

    def send(self, number: int) -> str:
        from benchmarks.tasks import add
        return add.enqueue(number, number).id

    def finished(self) -> int:
        from django_tasks_db.models import DBTaskResult
        return DBTaskResult.objects.successful().count()

    def done(self, job_id: str) -> bool:
        from django_tasks_db.models import DBTaskResult
        return DBTaskResult.objects.successful().filter(id=job_id).exists()


class DjangoQ2(Peer):
    """django-q2: its ORM broker (the database is the queue, polled by the cluster), a cluster of 2
    workers (`qcluster`), outcomes in its Success table."""

    package = "django-q2"

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "django", "qcluster"]]

    def send(self, number: int) -> str:
        from django_q.tasks import async_task
        return async_task("benchmarks.functions.add", number, number)

    def finished(self) -> int:
        from django_q.models import Success
        return Success.objects.count()

    def done(self, job_id: str) -> bool:
        from django_q.models import Success
        return Success.objects.filter(id=job_id).exists()


class Dramatiq(Peer):
    """Dramatiq on RabbitMQ through django-dramatiq: 2 worker processes (`rundramatiq`), outcomes in
    Redis (its Results middleware; a Redis database of its own, one key a result)."""

    package = "dramatiq"

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "django", "rundramatiq", "--processes", "2", "--threads", "1",
                 "--queues", "bench_dramatiq"]]

    def results(self):
        import redis
        from django.conf import settings
        return redis.Redis.from_url(settings.DRAMATIQ_RESULT_BACKEND["BACKEND_OPTIONS"]["url"])

    def prepare(self) -> None:
        from django.conf import settings
        from kombu import Connection
        with Connection(settings.DRAMATIQ_BROKER["OPTIONS"]["url"]) as broker:
            for queue in ("bench_dramatiq", "bench_dramatiq.DQ", "bench_dramatiq.XQ"):
                broker.default_channel.queue_delete(queue)  # what an interrupted run left
        self.results().flushdb()
        self.sent = {}  # message id -> message, to ask for its result

    def send(self, number: int) -> str:
        from benchmarks.dramatiq_tasks import add
        message = add.send(number, number)
        self.sent[message.message_id] = message
        return message.message_id

    def finished(self) -> int:
        return self.results().dbsize()

    def done(self, job_id: str) -> bool:
        from dramatiq.results import ResultMissing
        try:
            self.sent[job_id].get_result(block=False)
        except ResultMissing:
            return False
        return True


class Procrastinate(Peer):
    """Procrastinate's Django integration: 2 worker processes (`procrastinate worker`, one job at a
    time each), jobs and outcomes as rows of its table, from a virtualenv of its own (psycopg 3)."""

    package = "procrastinate"
    python = str(ROOT / "benchmarks" / ".venv-procrastinate" / "bin" / "python")

    def workers(self) -> list[list[str]]:
        return [[self.python, "-m", "django", "procrastinate", "worker", "--queues", "bench_peers",
                 "--concurrency", "1"]] * 2

    def send(self, number: int) -> str:
        from benchmarks.procrastinate_tasks import add
        return str(add.defer(x=number, y=number))

    def finished(self) -> int:
        from procrastinate.contrib.django.models import ProcrastinateJob
        return ProcrastinateJob.objects.filter(status="succeeded").count()

    def done(self, job_id: str) -> bool:
        from procrastinate.contrib.django.models import ProcrastinateJob
        return ProcrastinateJob.objects.filter(id=int(job_id), status="succeeded").exists()


PEERS = {peer.name: peer for peer in [
    ProjectJob(PROJECT), ProjectTask("this project, django.tasks"),
    DjangoTasksDB("django-tasks-db"), DjangoTasksCelery("django-tasks-celery"), CeleryRedis("celery-redis"),
    DjangoRQ("django-rq"), DjangoQ2("django-q2"), Dramatiq("dramatiq"), Procrastinate("procrastinate"),
]}


def wait_until(predicate, timeout: float, interval: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def measure(peer: Peer, jobs: int, latency: int) -> dict:
    """In a process of its own, set up with the peer's settings: start its workers, time it."""
    import django
    django.setup()
    peer.prepare()
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (the workers' output, shown if the run fails)
    workers = [subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
               for command in peer.workers()]
    try:
        def batch(count: int) -> float:
            before = peer.finished()
            started = time.perf_counter()
            for number in range(count):
                peer.send(number)
            wait_until(lambda: peer.finished() >= before + count, timeout=900, interval=0.02,
                       what=f"{count} jobs of {peer.name}")
            return time.perf_counter() - started

        batch(200)  # warm up: its workers started, connections made, imports done
        seconds = batch(jobs)
        latencies = []
        for number in range(latency):
            started = time.perf_counter()
            job_id = peer.send(number)
            wait_until(lambda job_id=job_id: peer.done(job_id), timeout=60, interval=0.001, what=f"a job of {peer.name}")
            latencies.append((time.perf_counter() - started) * 1000)
        version = importlib.metadata.version(peer.package) if peer.package else "—"  # in its virtualenv
        return {"rate": jobs / seconds, "latencies": latencies, "version": version}
    except BaseException:
        log.seek(0)
        print(log.read()[-5000:], file=sys.stderr)
        raise
    finally:
        for worker in workers:
            worker.terminate()  # its warm shutdown: the running job finishes
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def database_for(server: str, peer: Peer) -> str:
    """A new, empty database for this peer on the server; its URL."""
    import psycopg2
    name = "bench_peers_" + "".join(c if c.isalnum() else "_" for c in peer.name.lower())
    with closing(psycopg2.connect(server)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="Jobs per throughput measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Measurements per system, interleaved.")
    parser.add_argument("--latency", type=int, default=200, help="One-at-a-time jobs timed per round.")
    parser.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS))
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="A PostgreSQL database URL; each system gets a database of its own beside it.")
    parser.add_argument("--measure", choices=list(PEERS), help="Internal: measure one system in this process.")
    arguments = parser.parse_args()
    if min(arguments.jobs, arguments.rounds, arguments.latency) < 1:
        parser.error("--jobs, --rounds and --latency must be at least 1")
    if arguments.measure:
        print(json.dumps(measure(PEERS[arguments.measure], arguments.jobs, arguments.latency)))
        return

    rates, versions = {name: [] for name in arguments.peers}, {}
    latencies = {name: [] for name in arguments.peers}
    for round_number in range(1, arguments.rounds + 1):
        # Each round starts with the next system: none always follows the same one (what ran just before
        # leaves the database and the broker busy for a while, measured as up to 15% on the one after).
        shift = (round_number - 1) % len(arguments.peers)
        for name in arguments.peers[shift:] + arguments.peers[:shift]:
            peer = PEERS[name]
            environment = peer.environment(database_for(arguments.server, peer))
            subprocess.run(peer.migrate(), cwd=ROOT, env=environment, check=True)
            result = subprocess.run(
                [peer.python, __file__, "--measure", name, "--jobs", str(arguments.jobs),
                 "--latency", str(arguments.latency)],
                cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True, check=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            rates[name].append(figures["rate"])
            versions[name] = figures["version"]
            latencies[name] += figures["latencies"]
            print(f"round {round_number}: {name}: {figures['rate']:.0f} jobs/s, "
                  f"p50 {statistics.median(figures['latencies']):.1f} ms", file=sys.stderr)
    report(arguments, rates, latencies, versions)


def report(arguments, rates: dict, latencies: dict, versions: dict) -> None:
    median = {name: statistics.median(values) for name, values in rates.items()}
    base = median.get(PROJECT)
    print(f"\n{arguments.jobs} no-op jobs per round, 2 worker processes, {arguments.rounds} interleaved rounds; "
          f"latency of {arguments.latency} one-at-a-time jobs per round, pooled\n")
    print("| system | version | jobs/s (median) | rounds | ratio to this project | latency p50 | p99 |")
    print("|---|---|---|---|---|---|---|")
    for name, values in rates.items():
        version = versions[name]
        ratio = f"{median[name] / base:.2f}" if base else "—"
        print(f"| {name} | {version} | {median[name]:.0f} | {', '.join(f'{v:.0f}' for v in values)} | {ratio} "
              f"| {percentile(latencies[name], 0.5):.1f} ms | {percentile(latencies[name], 0.99):.1f} ms |")


if __name__ == "__main__":
    main()
