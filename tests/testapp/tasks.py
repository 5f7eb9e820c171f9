"""What a user writes to add jobs: one decorated function each, with typed arguments."""
import asyncio
import time
from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from django.tasks import TaskContext, task
from pydantic import Field, HttpUrl

from jobs.catalog import Limit, Unique, flow_control, job
from jobs.workflows import chain, chord, step, workflow


@job("testapp.add")
def add(x: int, y: int) -> int:
    """Add two integers."""
    return x + y


@job("testapp.say_hello")
def say_hello(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@job("testapp.countdown", bind=True)
def countdown(self, seconds: Annotated[int, Field(ge=1, le=600)]) -> str:
    """Count down one second at a time, reporting progress."""
    for elapsed in range(seconds):
        self.report_progress(elapsed, seconds, f"{seconds - elapsed} s to go")
        time.sleep(1)
    return f"Counted down {seconds} s."


@job("testapp.purge", restricted=True)
def purge(older_than_days: int = 30) -> int:
    """A job only staff may launch from the web."""
    return older_than_days


@job("testapp.remind")
def remind(url: HttpUrl, at: datetime, day: date, level: Literal["low", "high"], tags: list[str],
           repeat: Annotated[int, Field(ge=1, le=3)] = 1, urgent: bool = False) -> str:
    """A job with one argument of each kind the launch form knows."""
    return f"{level} {url} at {at.isoformat()} on {day.isoformat()} x{repeat} {','.join(tags)} {urgent}"


@job("testapp.needs_file")
def needs_file(path: str) -> str:
    """Fail until the file at `path` exists: a job an operator can repair, then requeue."""
    with open(path) as found:
        return found.read()


@job("testapp.xsum")
def xsum(numbers: list[int]) -> int:
    """Add up a list of integers."""
    return sum(numbers)


@job("testapp.sleep_then_add")
def sleep_then_add(seconds: float, x: int, y: int = 0) -> int:
    """Wait, then add: a step that is still running when something happens."""
    time.sleep(seconds)
    return x + y


@job("testapp.number_from_file")
def number_from_file(path: str) -> int:
    """The integer written in the file at `path`; fails until it exists (a step to repair, then retry)."""
    with open(path) as found:
        return int(found.read())


@job("testapp.sum_once")
def sum_once(numbers: list[int], key: str) -> int:
    """Sum, counting its runs under `key` (examples' Probe rows): a chord body that must run once."""
    from examples.services import probe_record

    probe_record(key=key)
    return sum(numbers)


@workflow("testapp.add_chain")
def add_chain(x: int, times: int = 3) -> dict:
    """Add 1 to x, `times` times in a chain."""
    return chain(step("testapp.add", x=x, y=1), *[step("testapp.add", input="x", y=1) for _ in range(times - 1)])


@workflow("testapp.sum_of_sums")
def sum_of_sums(size: int) -> dict:
    """n + n for n below `size` side by side, then their sum."""
    return chord([step("testapp.add", x=n, y=n) for n in range(size)], step("testapp.xsum", input="numbers"))


@workflow("testapp.rebuild_account", unique=Unique(on=("account",)))
def rebuild_account(account: int) -> dict:
    """Two adds in a chain: one rebuild per account running at a time."""
    return chain(step("testapp.add", x=account, y=1), step("testapp.add", input="x", y=1))


# The same kind of jobs declared with Django's own tasks API (django.tasks): catalog jobs named by
# their module path, run by the engine (jobs/django_tasks/backend.py).
@task
def multiply(x: int, y: int = 2) -> int:
    """Multiply two integers."""
    return x * y


@task(takes_context=True)
def which_attempt(context: TaskContext, label: str) -> dict:
    """Say which attempt this is, and under which id."""
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
async def double_later(x: int) -> int:
    """An async task: doubled after yielding once."""
    await asyncio.sleep(0)
    return 2 * x


@task(queue_name="demo", priority=100)
def urgent(x: int) -> int:
    """A task of its own queue and the highest priority."""
    return x


@task
def refuse(message: str) -> None:
    """Fail with `message`."""
    raise ValueError(message)


@task
def unhinted(label, count=1):  # as third-party apps write them (Wagtail's tasks have no type hints)
    """Repeat `label`."""
    return [label] * count


@job("testapp.sync_account", unique=Unique(on=("account",)))
def sync_account(account: int, full: bool = False) -> int:
    """One sync per account queued or running at a time, however it is asked for."""
    return account


@job("testapp.refresh", unique=Unique(until="started"))
def refresh(name: str) -> str:
    """One refresh waiting per name; a new one may queue while one runs."""
    return name


def today_and_kind(kind: str) -> str:
    return f"{date.today()}:{kind}"


@job("testapp.daily_digest", unique=Unique(on=today_and_kind, until=timedelta(hours=1)))
def daily_digest(kind: str) -> str:
    """At most one digest of a kind an hour and a day, whatever became of the last."""
    return kind


def host(url: str) -> str:
    return urlsplit(url).hostname or ""


@job("testapp.fetch_politely", limit=Limit(rate="10/s", on=host))
def fetch_politely(url: str) -> str:
    """At most 10 a second per host (its row's start says when it ran)."""
    return url


@job("testapp.import_for", limit=Limit(concurrency=1, on=("owner",)))
def import_for(owner: int, label: str, seconds: float = 0.0) -> str:
    """One at a time per owner (its row's start and end, and its earlier deliveries, say when it ran)."""
    time.sleep(seconds)
    return label


@task
@flow_control(unique=Unique(on=("account",)))
def refresh_account(account: int) -> int:
    """Django's @task, one per account queued or running (jobs.catalog.flow_control)."""
    return account
