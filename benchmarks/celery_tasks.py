"""The no-op job as Celery's documentation declares one, for Celery as most people run it."""
from celery import shared_task


@shared_task
def add(x: int, y: int) -> int:
    return x + y
