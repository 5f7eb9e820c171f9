import statistics
import time

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from jobs import services
from jobs.models import JobStats, JobStatsProgress
from jobs.testing.databases import results_fill, throwaway_database


class Command(BaseCommand):
    help = (
        "Fill a throwaway database with finished jobs and time the operations pages (overview, charts "
        "over each period, workers) and the minute's statistics count at each size given; prints the "
        "ratio of the largest size's times to the smallest's."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 10_000_000],
                            help="Table sizes to measure at, ascending (rows are added between sizes).")
        parser.add_argument("--repeat", type=int, default=7, help="Requests per page; the median is reported.")

    def handle(self, *args, rows, repeat, **options):
        if rows != sorted(rows) or rows[0] < 1000:
            raise CommandError("--rows must be ascending sizes of at least 1000.")
        with throwaway_database("bench"), override_settings(ALLOWED_HOSTS=["testserver"]):
            self.run(rows, repeat)

    def run(self, sizes, repeat):
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        overview = reverse("admin:jobs_queue_changelist")
        charts = reverse("admin:jobs_queue_charts")
        pages = {"overview": overview, **{f"charts, last {period}": f"{charts}?period={period}"
                                          for period in ("hour", "day", "week", "month")},
                 "charts, one job, last month": f"{charts}?period=month&job=jobs.add",
                 "workers": reverse("admin:jobs_worker_changelist")}
        now = timezone.now()
        filled, table = 0, {}
        for size in sizes:
            self.stderr.write(f"filling to {size:,} rows…")
            results_fill(filled + 1, size, now=now, launched_by=None)
            filled = size
            # Counted from scratch: the rows just added are older than what was counted before.
            JobStats.objects.all().delete()
            JobStatsProgress.objects.all().delete()
            started = time.perf_counter()
            counted = services.job_stats_count()
            self.stderr.write(f"  first count of the history: {counted:,} jobs in {time.perf_counter() - started:.1f} s")
            table.setdefault("statistics count, nothing new (ms)", {})[size] = self.median(services.job_stats_count, repeat)
            for name, url in pages.items():
                table.setdefault(f"{name} (ms)", {})[size] = self.median(lambda url=url: self.get(client, url), repeat)
        self.report(table, sizes, repeat)

    def get(self, client, url):
        response = client.get(url)
        if response.status_code != 200:
            raise CommandError(f"{url} answered {response.status_code}")

    def median(self, call, repeat) -> float:
        """Median milliseconds of `call`, after one call to warm caches."""
        call()
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)

    def report(self, table, sizes, repeat):
        self.stdout.write(f"\nOperations pages, median of {repeat}, milliseconds\n")
        self.stdout.write(f"{'':<38}" + "".join(f"{f'{size:,} rows':>16}" for size in sizes) + f"{'ratio':>8}")
        for name, by_size in table.items():
            ratio = by_size[sizes[-1]] / by_size[sizes[0]]
            self.stdout.write(f"{name:<38}" + "".join(f"{by_size[size]:>16.1f}" for size in sizes) + f"{ratio:>8.2f}")
