"""Celery's Django fixup, with database connections kept across tasks where that is safe.

Install with `Celery(..., fixups=["jobs.results.fixups:install_django_fixup"])` (site_config/celery.py).
"""
from celery.fixups import django as django_fixup
from django.db import close_old_connections, connections, router

# Pools in which a task runs in the worker process itself (solo) or in a long-lived child process
# (prefork): one Django connection per process, reused task after task.
CONNECTION_REUSING_POOLS = ("prefork", "solo")


class TaskAsRequestWorkerFixup(django_fixup.DjangoWorkerFixup):
    """Handle database connections around a task the way Django does around a request.

    Stock Celery closes every connection before and after each task, so each task pays for a
    new PostgreSQL connection (about two thirds of a short task's cost here). Django's request
    cycle instead keeps a connection for CONN_MAX_AGE and, with CONN_HEALTH_CHECKS, checks it
    before reuse, which also replaces a connection broken by a PostgreSQL restart. A task whose
    first statement is its start's (the STARTED write, or the read of its state when that write
    waits: started.py) skips that check: the statement, retried on a new connection, does its work.

    Only in prefork and solo pools. Django's connections belong to a thread: in the threads, gevent
    and eventlet pools every thread or greenlet that runs a task opens its own, and kept connections
    pile up until PostgreSQL refuses more. Celery merged this same idea and reverted it for that
    reason (celery#9824, reverted after #10021); those pools keep Celery's close-after-each-task.
    Forked pool processes still drop the parent's connections (`_close_database`).
    """

    def reuses_connections(self) -> bool:
        """Whether this worker's pool runs tasks in long-lived processes that each own one connection."""
        if self.worker is None:
            return False
        pool = self.worker.pool_cls if isinstance(self.worker.pool_cls, str) else self.worker.pool_cls.__module__
        return any(name in pool for name in CONNECTION_REUSING_POOLS)

    def on_task_prerun(self, sender, **kwargs):
        super().on_task_prerun(sender, **kwargs)
        if self.reuses_connections() and not getattr(sender.request, "is_eager", False) \
                and started_write_checks_connection(sender):
            # The task's first statement is its start's, which the result backend retries on a new
            # connection if this one broke: that statement is the health check, and Django's
            # SELECT 1 before it a round trip for nothing.
            from .models import StoredTaskResult  # not at import: Celery loads fixups before Django's apps

            connection = connections[router.db_for_write(StoredTaskResult._meta.concrete_model)]
            if connection.connection is not None:
                connection.health_check_done = True

    def close_database(self, **kwargs):
        if self.reuses_connections():
            close_old_connections()
        else:
            super().close_database(**kwargs)


class DjangoFixup(django_fixup.DjangoFixup):
    """Celery's Django fixup, with the worker half replaced by TaskAsRequestWorkerFixup."""

    @property
    def worker_fixup(self):
        if self._worker_fixup is None:
            self._worker_fixup = TaskAsRequestWorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value):
        self._worker_fixup = value


def install_django_fixup(app):
    """Install DjangoFixup on `app` (the hook Celery calls for each name in `fixups`)."""
    return DjangoFixup(app).install()


def started_write_checks_connection(task) -> bool:
    """Whether a run of `task` begins by storing STARTED through this project's result backend (or
    reading its state, started.py), retried on a new connection when the database connection broke
    (DatabaseBackend.exception_safe_to_retry, with CELERY_RESULT_BACKEND_ALWAYS_RETRY)."""
    from .backend import DatabaseBackend
    backend = task.backend
    return task.track_started and not task.ignore_result and isinstance(backend, DatabaseBackend) and backend.always_retry
