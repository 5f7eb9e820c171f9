"""Launching through the API under load, beside reading from it: the web server as deployed."""
import http.client
import json
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_token_create
from jobs.catalog import find_job
from jobs.exceptions import UnknownJob
from jobs.models import JobRecord
from jobs.testing.broker import throwaway_vhost
from jobs.testing.databases import throwaway_database
from jobs.testing.processes import WebServer, Worker, procfile_web

JOB = "jobs.add"  # the examples app's add(x, y)
LAUNCH = ("POST", "/api/jobs/", json.dumps({"task": JOB, "kwargs": {"x": 1, "y": 2}}), 202)
READ = ("GET", "/api/jobs/catalog/", None, 200)
FLOOD_WORKFLOW = "jobs.add_then_sum"  # the examples app's declared chord of add jobs


def send(connection, key, kind) -> http.client.HTTPResponse | None:
    """One request of `kind` on `connection`, holding token `key` (if any): its answer, read, or None
    if it failed."""
    method, path, body, _ = kind
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"} if key else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
    except OSError:
        return None
    return response


def flood_client(port, key, attack, polite, stop, answers):
    """A flooder's client (a process): sends `attack` until `stop`, waiting as Retry-After says if
    `polite`; puts a Counter of (what, status) on `answers` at the end."""
    what, kind = attack
    tally, connection = Counter(), http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        response = send(connection, key, kind)
        tally[what, response and response.status] += 1
        if response is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        elif polite and response.status == 429:
            stop.wait(min(float(response.headers.get("Retry-After", 1)), 60))
    answers.put(tally)


class Command(BaseCommand):
    help = (
        "Start the web server as the Procfile runs it (or --web), then measure POST /api/jobs/ "
        f"({JOB}: validated, recorded, published with confirms) beside GET /api/jobs/catalog/ from the "
        "same concurrent clients holding a token, in one run: requests/s, p50 and p99."
    )

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=50, help="Concurrent clients (keep-alive connections).")
        parser.add_argument("--seconds", type=float, default=15, help="Length of each measurement.")
        parser.add_argument("--rounds", type=int, default=2, help="Measurements of each, interleaved.")
        parser.add_argument("--flood", action="store_true", help=(
            "Instead: how fast one user's reads answer while another user launches as fast as the limits "
            "(JOBS_LAUNCH_RATE, JOBS_MAX_UNFINISHED, as configured) let them, from 10 clients at once: "
            "the largest declared workflow, workflows of the whole budget, single jobs."))
        parser.add_argument("--without-worker", action="store_true", help=(
            "Measure with no worker running. By default a worker runs as the Procfile's (the default queue, "
            "2 processes) and consumes the launched jobs on the same machine, as in production."))
        parser.add_argument("--web", action="append", help=(
            "A web server command to measure instead of the Procfile's (repeatable, to compare), with "
            "{port} for its port, e.g. 'gunicorn site_config.wsgi --bind 127.0.0.1:{port} --workers 2'."))

    def handle(self, *args, clients, seconds, rounds, web, flood, without_worker, **options):
        if clients < 1 or seconds <= 0 or rounds < 1:
            raise CommandError("--clients and --rounds must be at least 1, --seconds above 0.")
        try:
            find_job(JOB)
        except UnknownJob as exc:
            raise CommandError(f"The benchmark launches {JOB} (the examples app): install that app. {exc}") from exc
        commands = web or [procfile_web("127.0.0.1:{port}")]
        with ExitStack() as stack:
            stack.enter_context(throwaway_database("api"))
            broker = stack.enter_context(throwaway_vhost(current_app.conf.broker_url, "bench_api"))
            user = User.objects.create_user("bench")
            _, key = api_token_create(user=user, name="bench")
            if not without_worker:
                worker = Worker(concurrency=2, queues="default", environment={"CELERY_BROKER_URL": broker}).start()
                stack.callback(worker.stop)
            for command in commands:
                self.stdout.write(f"\n{command}{'' if without_worker else ', with a worker running the jobs'}")
                if flood:
                    _, flooder_key = api_token_create(user=User.objects.create_user("flooder"), name="bench")
                    self.flood(command, broker, key, flooder_key, seconds, rounds)
                else:
                    self.measure(command, broker, key, clients, seconds, rounds)

    @contextmanager
    def serving(self, command, environment):
        """The web server `command` running on a free port of loopback, with `environment` over the
        benchmark's database and broker; yields the port. Its output is shown if anything fails."""
        server = WebServer(environment, command).start()
        try:
            yield server.port
        except BaseException:
            self.stderr.write(server.output()[-3000:])
            raise
        finally:
            server.stop()

    def measure(self, command, broker, key, clients, seconds, rounds):
        with self.serving(command, {"CELERY_BROKER_URL": broker, "JOBS_LAUNCH_RATE": "1000000/s"}) as port:
            for kind in (LAUNCH, READ):
                self.load(port, key, kind, 4, 1)  # warm up every worker process
            figures = {}
            for label, count in ((f"{clients} clients", clients), ("1 client", 1)):
                for _ in range(rounds):
                    for name, kind in (("launch", LAUNCH), ("read", READ)):
                        figures.setdefault((label, name), []).append(self.load(port, key, kind, count, seconds))
            self.report(figures)

    def flood(self, command, broker, key, flooder_key, seconds, rounds):
        """One user's reads, alone and while another launches from 10 clients as fast as the
        limits let them (the configured limits: the environment's, else the defaults): clients
        that wait as Retry-After says, then clients that ignore it. The flooder's clients are
        processes of their own, so they take no time from the reader's."""
        budget = int(os.environ.get("JOBS_LAUNCH_RATE", settings.JOBS_LAUNCH_RATE).split("/")[0])
        attacks = [  # (what, request)
            ("declared workflow of 10,001 steps", ("POST", "/api/workflows/", json.dumps(
                {"workflow": FLOOD_WORKFLOW, "kwargs": {"pairs": 10_000}}), None)),
            (f"workflow of {budget} steps", ("POST", "/api/workflows/", json.dumps(
                {"workflow": FLOOD_WORKFLOW, "kwargs": {"pairs": max(budget - 1, 1)}}), None)),
            ("single job", (*LAUNCH[:3], None)),
        ]
        context = multiprocessing.get_context("fork")
        with self.serving(command, {"CELERY_BROKER_URL": broker}) as port:
            self.load(port, key, READ, 4, 1)  # warm up every worker process
            figures = {"quiet": []}
            for _ in range(rounds):
                figures["quiet"].append(self.load(port, key, READ, 1, seconds))
                for polite in (True, False):
                    label = "Retry-After" if polite else "hammering"
                    stop, answers = context.Event(), context.Queue()
                    clients = [context.Process(target=flood_client, args=(port, flooder_key, attacks[index % 3],
                                                                          polite, stop, answers))
                               for index in range(10)]
                    for client in clients:
                        client.start()
                    try:
                        figures.setdefault(label, []).append(self.load(port, key, READ, 1, seconds))
                    finally:
                        stop.set()
                        tally = Counter()
                        for _ in clients:
                            tally.update(answers.get(timeout=180))
                        for client in clients:
                            client.join()
                    figures.setdefault(f"{label} answers", Counter()).update(tally)
        quiet = sorted(latency for _, run in figures["quiet"] for latency in run)
        for label in ("quiet", "Retry-After", "hammering"):
            latencies = sorted(latency for _, run in figures[label] for latency in run)
            p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
            ratio = "" if label == "quiet" else (f"   to quiet: p50 {p50 / quiet[len(quiet) // 2]:.2f}, p99 "
                                                 f"{p99 / quiet[int(len(quiet) * 0.99)]:.2f}")
            self.stdout.write(f"  reads, flooder {label:<12} p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms"
                              f"   ({len(latencies)} reads){ratio}")
            for (what, status), count in sorted(figures.get(f"{label} answers", {}).items(), key=str):
                self.stdout.write(f"      flooder's {what}: {count} answered {status}")
        self.stdout.write(f"  jobs recorded for the flooder in all: "
                          f"{JobRecord.objects.filter(launched_by__username='flooder').count()}")

    def request(self, port, key, kind, connection=None):
        """One request on `connection` (a new one if None); its seconds, or None if it failed."""
        started = time.perf_counter()
        response = send(connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60), key, kind)
        if response is None:
            return None
        if response.status != kind[3]:
            raise CommandError(f"{kind[0]} {kind[1]} answered {response.status}, not {kind[3]}.")
        return time.perf_counter() - started

    def load(self, port, key, kind, clients, seconds):
        """`clients` threads, each on its own keep-alive connection, for `seconds`: latencies."""
        latencies, deadline = [], time.perf_counter() + seconds
        errors = []

        def client():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine = []
            try:
                while time.perf_counter() < deadline:
                    took = self.request(port, key, kind, connection)
                    if took is None:
                        connection.close()
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                        continue
                    mine.append(took)
            except CommandError as exc:
                errors.append(exc)
            latencies.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return len(latencies) / (time.perf_counter() - started), latencies

    def report(self, figures):
        for label in dict.fromkeys(label for label, _ in figures):
            results = {}
            for name in ("launch", "read"):
                runs = figures[(label, name)]
                latencies = sorted(latency for _, run in runs for latency in run)
                results[name] = (statistics.median(rate for rate, _ in runs),
                                 latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)])
                rate, p50, p99 = results[name]
                self.stdout.write(f"  {label:<11} {name:<7} {rate:7.0f} requests/s   p50 {p50 * 1000:6.1f} ms   "
                                  f"p99 {p99 * 1000:6.1f} ms   (rounds: {', '.join(f'{r:.0f}' for r, _ in runs)})")
            launch, read = results["launch"], results["read"]
            self.stdout.write(f"  {label:<11} launches/s to reads/s {launch[0] / read[0]:.2f} (target at least 0.5); "
                              f"launch p99 to read p99 {launch[2] / read[2]:.2f} (target at most 2)")
