"""The seeds' small jobs. Each takes primitive arguments and calls one service; names are explicit
and stable (django-celery-beat stores them as text). Queues: CELERY_TASK_ROUTES."""
import time
from typing import Annotated
from urllib.parse import urlsplit

from django.conf import settings
from django.tasks import task
from pydantic import Field, HttpUrl

from jobs.catalog import Limit, job
from jobs.workflows import chord, step, workflow

from . import fetch, services


@job("jobs.add")
def add(x: int, y: int) -> int:
    """Add two integers (the seeds' first task)."""
    return x + y


@job("jobs.add_paced", limit=Limit(rate="50/s"))
def add_paced(x: int, y: int) -> int:
    """Add two integers, at most 50 a second across every worker (bench_limits measures the limit)."""
    return x + y


@job("jobs.xsum")
def xsum(numbers: list[int]) -> int:
    """Add up a list of integers: the body of a chord of jobs.add (Celery's own chord example)."""
    return sum(numbers)


@workflow("jobs.add_then_sum")
def add_then_sum(pairs: Annotated[int, Field(ge=1, le=10_000)] = 10) -> dict:
    """A workflow: add `pairs` pairs of numbers side by side, then sum the results (a chord)."""
    return chord([step("jobs.add", x=n, y=n) for n in range(pairs)], step("jobs.xsum", input="numbers"))


@job("jobs.say_hello")
def say_hello(name: str) -> str:
    """Greet someone by name (the seeds' second task)."""
    return f"Hello, {name}!"


@job("jobs.countdown", bind=True)
def countdown(self, seconds: Annotated[int, Field(ge=1, le=600)]) -> str:
    """Count down one second at a time, reporting progress (a job to watch run)."""
    for elapsed in range(seconds):
        self.report_progress(elapsed, seconds, f"{seconds - elapsed} s to go")
        time.sleep(1)
    return f"Counted down {seconds} s."


@job("jobs.probe", restricted=True)
def probe(key: str, seconds: Annotated[float, Field(ge=0, le=60)] = 0) -> str:
    """Wait, then record `key` once: an end-to-end check of the pipeline (the fault suite counts these)."""
    time.sleep(seconds)
    services.probe_record(key=key)
    return key


def host(url: str) -> str:
    """The host of a URL: the key of the fetch job's limit."""
    return urlsplit(url).hostname or ""


@job(
    "jobs.fetch_url",
    restricted=True,  # a URL of anyone's choosing, fetched from inside the network
    autoretry_for=(fetch.FetchTemporaryError,),
    retry_backoff=1,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=4,
    # Polite to each host, across every worker: retries count against it too.
    limit=Limit(rate=settings.FETCH_RATE_PER_HOST, concurrency=settings.FETCH_CONCURRENCY_PER_HOST, on=host),
)
def fetch_url(url: HttpUrl) -> dict[str, object]:
    """Fetch a page and summarize it (status, size, title); timeouts and 5xx are retried, 4xx not."""
    return fetch.url_summarize(url=str(url))


# The seeds' say_hello again, declared with Django's own tasks API (django.tasks): a catalog job named
# examples.tasks.greet, enqueued with greet.enqueue(name) (docs/how-to/django-tasks.md).
@task
def greet(name: Annotated[str, Field(min_length=1, max_length=200)]) -> str:
    """Greet someone by name (Django's tasks API)."""
    return f"Hello, {name}!"


@task
def add_numbers(x: int, y: int) -> int:
    """Add two integers (the seeds' add, with Django's tasks API: bench_throughput compares the two)."""
    return x + y
