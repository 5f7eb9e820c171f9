"""The no-op job each peer runs, declared the way that peer's documentation declares a job."""
from django.tasks import task


@task
def add(x: int, y: int) -> int:
    return x + y
