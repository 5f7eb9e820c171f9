"""The results table as the result backend writes it."""
from django_celery_results.models import TaskResult

from .managers import StoredResultManager


class StoredTaskResult(TaskResult):
    """TaskResult as the result backend writes it (see jobs/managers.py)."""

    objects = StoredResultManager()

    class Meta:
        proxy = True
        verbose_name = "task result"
