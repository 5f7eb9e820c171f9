"""The result backend: django-celery-results' database backend, writing through
jobs.results.managers.StoredResultManager (one upsert per state change, batched retention)."""
from django.db import OperationalError, connections, router
from django_celery_results.backends import database

from .managers import JobSettled
from .models import StoredTaskResult


class DatabaseBackend(database.DatabaseBackend):
    """`CELERY_RESULT_BACKEND = "jobs.results:DatabaseBackend"`: django-db, with the writes above."""

    def exception_safe_to_retry(self, exc):
        """Retry on a new connection after the connection broke (CELERY_RESULT_BACKEND_ALWAYS_RETRY).

        django-celery-results retries InterfaceError ("connection already closed"); a PostgreSQL
        restart first shows as OperationalError ("server closed the connection unexpectedly").
        """
        if isinstance(exc, OperationalError):
            connections[router.db_for_write(StoredTaskResult._meta.concrete_model)].close()
            return True
        return super().exception_safe_to_retry(exc)

    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        try:
            return super()._store_result(task_id, result, status, traceback, request, using)
        except JobSettled as settled:
            # Storing STARTED is the worker's first word on a job: if the job was cancelled while
            # queued (and this worker missed the revoke), or already succeeded (its message came
            # again), JobTask sees the flag and does not run it; if it may be running elsewhere,
            # JobTask sends it again for later.
            if request is not None:
                request.job_settled, request.job_running_on = settled.status, settled.worker
            return result

    TaskModel = StoredTaskResult
