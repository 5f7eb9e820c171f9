"""What a user writes to add jobs: one decorated function each, with typed arguments."""
import time
from typing import Annotated

from pydantic import Field

from jobs.catalog import job


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
