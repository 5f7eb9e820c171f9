"""The jobs workers run. Names are explicit and stable: django-celery-beat stores them as text."""
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
