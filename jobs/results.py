"""django-celery-results' database backend, writing each state change in one statement.

The stock manager stores a state with a SELECT and then an INSERT in its own transaction or an
UPDATE: up to four round trips, twice per task (STARTED, then the outcome). An
INSERT … ON CONFLICT (task_id) DO UPDATE does the same in one, and cannot race with another
writer of the same task. Results stay in django-celery-results' TaskResult table.
"""
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.managers import TaskResultManager


class UpsertTaskResultManager(TaskResultManager):
    def store_result(self, content_type, content_encoding, task_id, result, status, traceback=None, meta=None,
                     periodic_task_name=None, task_name=None, task_args=None, task_kwargs=None, worker=None,
                     using=None, **kwargs):
        """Insert or update the task's row with this state, in one statement."""
        fields = {
            "status": status,
            "result": result,
            "traceback": traceback,
            "meta": meta,
            "content_encoding": content_encoding,
            "content_type": content_type,
            "periodic_task_name": periodic_task_name,
            "task_name": task_name,
            "task_args": task_args,
            "task_kwargs": task_kwargs,
            "worker": worker,
        }
        if "date_started" in kwargs:  # only with STARTED; later states keep it
            fields["date_started"] = timezone.now()
        row = self.model(task_id=task_id, **fields)
        self.using(using).bulk_create(
            [row], update_conflicts=True, unique_fields=["task_id"], update_fields=[*fields, "date_done"]
        )
        return row


class UpsertDatabaseBackend(DatabaseBackend):
    """`CELERY_RESULT_BACKEND = "jobs.results:UpsertDatabaseBackend"`: django-db, one write per state."""

    @property
    def TaskModel(self):
        from .models import StoredTaskResult

        return StoredTaskResult
