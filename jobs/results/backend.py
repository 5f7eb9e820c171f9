"""The result backend: django-celery-results' database backend, writing through
jobs.results.managers.StoredResultManager (one statement per state change, batched retention), with a
run's STARTED state written once it has lasted JOBS_STARTED_AFTER_SECONDS (started.py)."""
import time
from functools import partial

from celery import states
from django.db import OperationalError, connections, router
from django.utils import timezone
from django_celery_results.backends import database

from . import started
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
        if status == states.STARTED:
            if self._marked_later(task_id, result, request, using):
                return result
        else:
            started.disarm(task_id)  # a run that reports progress or ends needs no mark
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

    def _marked_later(self, task_id, result, request, using) -> bool:
        """Whether this run starts with its STARTED mark left for later (started.py): its record is
        PENDING and its message is delivered for the first time. A message delivered again to a
        PENDING record first waits until an earlier delivery's run would have marked itself."""
        after = started.started_after(self.app.tasks.get(getattr(request, "task", None)), request)
        if after is None:
            return False
        manager = self.TaskModel._default_manager
        if manager.status_of(task_id, using) != states.PENDING:
            return False  # cancelled, done, retried, maybe running elsewhere: the full write decides
        if request.delivery_info.get("redelivered"):
            time.sleep(after + started.REDELIVERED_MARGIN)
            return False
        request.job_started_at = timezone.now()
        started.arm(task_id, after, partial(manager.mark_started, task_id, self.encode_content(result)[2],
                                            request.hostname, request.job_started_at, using))
        return True

    def _get_extended_properties(self, request, traceback):
        properties = super()._get_extended_properties(request, traceback)
        if (started_at := getattr(request, "job_started_at", None)) is not None:
            properties["date_started"] = started_at  # a run not marked when it began (started.py)
        return properties

    TaskModel = StoredTaskResult
