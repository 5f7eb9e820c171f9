import statistics
import time
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.test import Client, override_settings
from django.urls import include, path
from django.utils import timezone
from django_celery_results.admin import TaskResultAdmin as StockTaskResultAdmin
from django_celery_results.models import TaskResult

from jobs.testing.databases import results_fill, throwaway_database

# The stock django-celery-results admin, mounted beside ours for a side-by-side run.
stock_site = admin.AdminSite(name="stock")
stock_site.register(TaskResult, StockTaskResultAdmin)
urlpatterns = [path("stock/", stock_site.urls), path("", include(settings.ROOT_URLCONF))]

class Command(BaseCommand):
    help = (
        "Fill a throwaway database with job results and time the results admin (ours and stock "
        "django-celery-results') page by page, at each size given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                            help="Table sizes to measure at, ascending (rows are added between sizes).")
        parser.add_argument("--repeat", type=int, default=5, help="Requests per page; the median is reported.")
        parser.add_argument("--without-stock", action="store_true",
                            help="Time only ours (the stock admin takes seconds a page at 10 million rows).")

    def handle(self, *args, rows, repeat, without_stock, **options):
        if rows != sorted(rows) or rows[0] < 1000:
            raise CommandError("--rows must be ascending sizes of at least 1000.")
        with throwaway_database("bench"):
            self.run(rows, repeat, with_stock=not without_stock)

    def run(self, sizes, repeat, with_stock):
        user = User.objects.create_superuser("bench", password="bench")
        client = Client()
        client.force_login(user)
        now = timezone.now()
        filled = 0
        table = {}
        for size in sizes:
            self.stderr.write(f"filling to {size:,} rows…")
            results_fill(filled + 1, size, now=now, launched_by=user)
            filled = size
            sample = TaskResult.objects.order_by("id")[size // 2]
            deep_page = size // 100 // 2  # the middle page, at 100 rows a page
            error_search = "?" + urlencode({"q": f"row {size // 2 // 10 * 10 + 7} failed"})  # a FAILURE row
            week_ago = (now - timedelta(days=7)).date().isoformat()
            pages = {
                "changelist": ("", ""),
                "filter status=FAILURE": ("?status=FAILURE", "?status__exact=FAILURE"),
                "filter job=jobs.add": ("?task_name=jobs.add", "?task_name__exact=jobs.add"),
                "filter queue=default": ("?record__queue=default", None),
                "filter worker": ("?worker=celery%40worker1", "?worker__exact=celery%40worker1"),
                "filter periodic task": ("?periodic_task_name=weekly+job+report",
                                         "?periodic_task_name__exact=weekly+job+report"),
                "filter date (past 7 days)": (f"?date_created__gte={week_ago}", f"?date_done__gte={week_ago}"),
                "search by id": (f"?q={sample.task_id}", f"?q={sample.task_id}"),
                "search by job name": ("?q=jobs.countdown", "?q=jobs.countdown"),
                "search by id prefix": (f"?q={sample.task_id[:8]}", f"?q={sample.task_id[:8]}"),
                "search text in arguments": ("?" + urlencode({"q": f'"n": {sample.pk}}}'}), None),
                "search text in errors": (error_search, error_search),
                f"page {deep_page}": (f"?p={deep_page}", f"?p={deep_page}"),
                "detail": (f"{sample.pk}/change/", f"{sample.pk}/change/"),
            }
            with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"]):
                for name, (ours, stock) in pages.items():
                    table.setdefault(name, {})[size] = (
                        self.time(client, f"/admin/django_celery_results/taskresult/{ours}", repeat),
                        self.time(client, f"/stock/django_celery_results/taskresult/{stock}", repeat)
                        if stock is not None and with_stock else None,
                    )
        self.report(table, sizes, repeat)

    def time(self, client, url, repeat) -> float:
        """Median milliseconds to render `url`, after one request to warm caches."""
        response = client.get(url)
        if response.status_code != 200:
            raise CommandError(f"{url} answered {response.status_code}")
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)

    def report(self, table, sizes, repeat):
        self.stdout.write(f"\nResults admin, median of {repeat} requests, milliseconds (ours / stock)\n")
        header = f"{'page':<28}" + "".join(f"{f'{size:,} rows':>24}" for size in sizes)
        self.stdout.write(header)
        for name, by_size in table.items():
            cells = []
            for size in sizes:
                ours, stock = by_size.get(size, (None, None))
                cell = f"{ours:.0f}" if ours is not None else "-"
                cell += f" / {stock:.0f}" if stock is not None else " / -"
                cells.append(f"{cell:>24}")
            self.stdout.write(f"{name:<28}" + "".join(cells))
