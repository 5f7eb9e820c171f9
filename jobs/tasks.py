"""The jobs workers run. Names are explicit and stable: django-celery-beat stores them as text."""
from .catalog import job


@job("jobs.add")
def add(x: int, y: int) -> int:
    """Add two integers (the seeds' first task)."""
    return x + y


@job("jobs.say_hello")
def say_hello(name: str) -> str:
    """Greet someone by name (the seeds' second task)."""
    return f"Hello, {name}!"
