"""django-celery-results' database backend, with two of its writes done better. Results stay in
its TaskResult table.

- Storing a state: the stock manager reads the row, then inserts it in a transaction of its own or
  updates it: up to four round trips, twice per task (STARTED, then the outcome). One
  INSERT … ON CONFLICT (task_id) DO UPDATE does the same, and cannot race another writer.
- Deleting expired results (beat's daily celery.backend_cleanup): the stock manager deletes them
  in one statement, which holds its locks for as long as millions of rows take; here they go in
  batches, each its own short transaction.
"""
from datetime import timedelta

from celery.utils.time import maybe_timedelta
from django.utils import timezone
from django_celery_results.backends import database
from django_celery_results.managers import TaskResultManager


class StoredResultManager(TaskResultManager):
    delete_batch_size = 5000

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

    def delete_expired(self, expires: timedelta | float) -> int:
        """Delete results done longer than `expires` ago, a batch at a time; return how many."""
        expired = self.filter(date_done__lt=timezone.now() - maybe_timedelta(expires)).order_by()
        deleted = 0
        while batch := list(expired.values_list("pk", flat=True)[: self.delete_batch_size]):
            deleted += self.filter(pk__in=batch).delete()[0]
        return deleted


class DatabaseBackend(database.DatabaseBackend):
    """`CELERY_RESULT_BACKEND = "jobs.results:DatabaseBackend"`: django-db, with the writes above."""

    @property
    def TaskModel(self):
        from .models import StoredTaskResult

        return StoredTaskResult
