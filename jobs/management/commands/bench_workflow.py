import statistics
import time

from django.core.management.base import BaseCommand, CommandError
from django_celery_results.models import TaskResult

from jobs import services
from jobs.catalog import find_job
from jobs.exceptions import UnknownJob
from jobs.models import Workflow
from jobs.testing.databases import throwaway_database
from jobs.testing.processes import Worker, wait_for
from jobs.workflows import chord, step

JOB, BODY = "jobs.add", "jobs.xsum"  # the examples app's


class Command(BaseCommand):
    help = ("Measure a chord of N jobs (N x jobs.add, then jobs.xsum of their results) beside the same N jobs "
            "sent one by one without a workflow, on a real worker, in one run; prints jobs/s and the ratio. "
            "Uses a throwaway database and the `default` queue: stop `make run`'s workers first.")

    def add_arguments(self, parser):
        parser.add_argument("--jobs", type=int, default=10_000, help="Jobs per run (the chord's header).")
        parser.add_argument("--rounds", type=int, default=3, help="Runs of each, interleaved.")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker pool processes.")

    def handle(self, *args, jobs, rounds, concurrency, **options):
        if jobs < 1 or rounds < 1 or concurrency < 1:
            raise CommandError("--jobs, --rounds and --concurrency must be at least 1.")
        try:
            find_job(JOB), find_job(BODY)
        except UnknownJob as exc:
            raise CommandError(f"The benchmark runs {JOB} and {BODY} (the examples app): install that app. {exc}") from exc
        figures = {"jobs without a workflow": [], "chord": []}
        with throwaway_database("workflow"):
            worker = Worker(concurrency=concurrency, queues="default").start()
            try:
                self.plain(200)  # warm up: pool processes, connections, imports
                for round_number in range(1, rounds + 1):
                    for name, run in (("jobs without a workflow", self.plain), ("chord", self.chord)):
                        started = time.perf_counter()
                        run(jobs)
                        figures[name].append(jobs / (time.perf_counter() - started))
                        self.stderr.write(f"round {round_number}: {name}: {figures[name][-1]:.0f} jobs/s")
            finally:
                worker.stop()
        medians = {name: statistics.median(rates) for name, rates in figures.items()}
        self.stdout.write(f"\n{jobs:,} x {JOB}, worker with {concurrency} prefork processes, median of {rounds} "
                          "interleaved rounds, from the first send until every result is stored")
        for name, rates in figures.items():
            self.stdout.write(f"  {name:<28} {medians[name]:6.0f} jobs/s   (rounds: "
                              f"{', '.join(f'{rate:.0f}' for rate in rates)})")
        self.stdout.write(f"\nChord / without a workflow (target: at least 0.8): "
                          f"{medians['chord'] / medians['jobs without a workflow']:.2f}")

    def plain(self, count: int) -> None:
        """`count` jobs sent one by one, each recorded as it is published; wait until all succeeded."""
        task = find_job(JOB)
        last = TaskResult.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for n in range(count):
            task.apply_async(kwargs={"x": n, "y": n})
        wait_for(lambda: TaskResult.objects.filter(pk__gt=last, status="SUCCESS").count() >= count, timeout=1200,
                 interval=0.2, message="the jobs to succeed")

    def chord(self, count: int) -> None:
        """A chord of `count` jobs and a body summing their results; wait until the workflow succeeded."""
        flow = services.workflow_launch(spec=chord([step(JOB, x=n, y=n) for n in range(count)],
                                                   step(BODY, input="numbers")))
        wait_for(lambda: Workflow.objects.filter(pk=flow.pk, state=Workflow.State.SUCCESS).exists(), timeout=1200,
                 interval=0.2, message="the chord to succeed")
        if Workflow.objects.get(pk=flow.pk).result != sum(2 * n for n in range(count)):
            raise CommandError(f"The chord's body summed the wrong results: {flow.pk}")
