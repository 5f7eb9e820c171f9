"""What a user writes to add jobs: one decorated function each, with typed arguments."""
import time
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, HttpUrl

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


@job("testapp.remind")
def remind(url: HttpUrl, at: datetime, day: date, level: Literal["low", "high"], tags: list[str],
           repeat: Annotated[int, Field(ge=1, le=3)] = 1, urgent: bool = False) -> str:
    """A job with one argument of each kind the launch form knows."""
    return f"{level} {url} at {at.isoformat()} on {day.isoformat()} x{repeat} {','.join(tags)} {urgent}"
