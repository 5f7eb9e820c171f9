"""The jobs workers run. Names are explicit and stable: django-celery-beat stores them as text."""
import time
from typing import Annotated

from pydantic import Field

from . import selectors
from .catalog import job


@job("jobs.add")
def add(x: int, y: int) -> int:
    """Add two integers (the seeds' first task)."""
    return x + y


@job("jobs.say_hello")
def say_hello(name: str) -> str:
    """Greet someone by name (the seeds' second task)."""
    return f"Hello, {name}!"


@job("jobs.job_report")
def job_report(days: int = 7) -> dict[str, dict[str, int]]:
    """Count the jobs of the last `days` days per day and status (the seeds' weekly report)."""
    return selectors.job_counts_by_day(days=days)


@job("jobs.countdown", bind=True)
def countdown(self, seconds: Annotated[int, Field(ge=1, le=600)]) -> str:
    """Count down one second at a time, reporting progress (a job to watch run)."""
    for elapsed in range(seconds):
        self.report_progress(elapsed, seconds, f"{seconds - elapsed} s to go")
        time.sleep(1)
    return f"Counted down {seconds} s."
