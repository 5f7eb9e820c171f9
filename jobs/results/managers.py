"""django-celery-results' database backend, with two of its writes done better. Results stay in
its TaskResult table.

- Storing a state: the stock manager reads the row, then inserts it in a transaction of its own or
  updates it: up to four round trips, twice per task (STARTED, then the outcome). One
  INSERT … ON CONFLICT (task_id) DO UPDATE does the same, cannot race another writer, and leaves a
  REVOKED (cancelled) row alone, which also tells the worker not to run the job. The STARTED
  write does not wait for the disk (see store_result). A later state (progress, the outcome) is a
  plain UPDATE of the row the launch recorded, when there is one (_state_updated).
- Deleting expired results (beat's daily celery.backend_cleanup): the stock manager deletes them
  in one statement, which holds its locks for as long as millions of rows take; here they go in
  batches, each its own short transaction.
"""
import json
from datetime import datetime, timedelta

from celery import states
from celery.utils.time import maybe_timedelta
from django.apps import apps
from django.conf import settings
from django.db import connections, router
from django.utils import timezone
from django_celery_results.managers import TaskResultManager

from ..catalog import PROGRESS
from .started import retried_on_a_new_connection

# How an earlier delivery of a job ended, by the state its row was in when the job started again.
DELIVERY_ENDINGS = {
    states.STARTED: "interrupted: its worker stopped or was lost mid-run",
    PROGRESS: "interrupted: its worker stopped or was lost mid-run",
    states.RETRY: "failed, and was retried",
    states.PENDING: "ended, and the job was sent again (a requeued dead letter)",
    states.FAILURE: "failed, and the job was sent again",
}


def run_lease() -> timedelta:
    """How long a start keeps others from starting the same job without word from its worker:
    three heartbeats, after which a worker is taken for lost (Worker.status)."""
    return timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)


class JobSettled(Exception):
    """The row is REVOKED (a cancelled job's record is final) or SUCCESS and this is a new start (a
    message delivered again after the job ran): the job must not run; or STARTED (PROGRESS) by a run
    that may still be going on: not now. `status` says which."""

    def __init__(self, task_id: str, status: str, worker: str | None = None):
        self.status = status
        self.worker = worker  # the worker that started it, for a run that may still be going on
        super().__init__(task_id, status, worker)


class StoredResultManager(TaskResultManager):
    delete_batch_size = 5000

    @property
    def db(self):
        """Routed as django-celery-results' own TaskResult (app label django_celery_results), not as
        this proxy of the jobs app: a router that sends results to a database of their own sends
        these there too."""
        return self._db or router.db_for_read(self.model._meta.concrete_model, **self._hints)

    def get_queryset(self):
        return super().get_queryset().using(self.db)

    def store_result(self, content_type, content_encoding, task_id, result, status, traceback=None, meta=None,
                     periodic_task_name=None, task_name=None, task_args=None, task_kwargs=None, worker=None,
                     using=None, **kwargs):
        """Insert or update the task's row with this state, in one statement.

        A REVOKED row is left as it is (a cancelled job stays cancelled), and so is a SUCCESS row that
        a redelivered message would start again; JobSettled says so.
        """
        now = timezone.now()
        fields = {
            "status": status, "result": result, "traceback": traceback, "meta": meta,
            "content_encoding": content_encoding, "content_type": content_type,
            "periodic_task_name": periodic_task_name, "task_name": task_name, "task_args": task_args,
            "task_kwargs": task_kwargs, "worker": worker, "date_done": now,
        }
        if "date_started" in kwargs:
            # A start's own time; a later state gives it only for a run not marked STARTED when it
            # began (started.py), and otherwise keeps the row's.
            fields["date_started"] = now if status == states.STARTED else kwargs["date_started"]
        # The router's write database, as django-celery-results' own manager writes (never a replica).
        connection = connections[using or router.db_for_write(self.model._meta.concrete_model)]
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        if status != states.STARTED and self._state_updated(connection, table, task_id, fields):
            return
        columns = ["task_id", "date_created", *fields]
        # A start over a run that may still be going on (the same message delivered again after a
        # connection loss, a broker node's crash) is refused: the run began less than RUN_LEASE ago,
        # or its worker's last heartbeat, within RUN_LEASE, lists it as running.
        lease = f"""{table}.status IN ('{states.STARTED}', '{PROGRESS}') AND EXCLUDED.status = '{states.STARTED}' AND (
            {table}.date_started > %s OR EXISTS (
                SELECT 1 FROM {quote(apps.get_model('jobs', 'Worker')._meta.db_table)} w WHERE w.hostname = {table}.worker
                AND w.stopped_at IS NULL AND w.last_heartbeat > %s
                AND w.running @> jsonb_build_array(jsonb_build_object('id', {table}.task_id))))"""
        # A start also returns the row's earlier start, if any: the delivery it replaces (see below).
        sql = (
            f"WITH prior AS (SELECT date_started, worker, status FROM {table} WHERE task_id = %s) "
            f"INSERT INTO {table} ({', '.join(map(quote, columns))}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT (task_id) DO UPDATE SET {', '.join(f'{quote(c)} = EXCLUDED.{quote(c)}' for c in fields)} "
            f"WHERE {table}.status <> %s AND NOT ({table}.status = %s AND EXCLUDED.status = %s) AND NOT ({lease}) "
            "RETURNING id, (SELECT date_started FROM prior), (SELECT worker FROM prior), (SELECT status FROM prior)"
        )
        if status == states.STARTED and not connection.in_atomic_block:
            # Committed without waiting for the WAL to reach the disk: the row is seen at once, and
            # a database crash could lose only this STARTED state, which the job's outcome replaces
            # anyway. The outcome's write waits for the disk, as every other write does.
            sql = "SET LOCAL synchronous_commit TO OFF; " + sql
        with connection.cursor() as cursor:
            lease_start = now - run_lease()
            cursor.execute(sql, [task_id, task_id, now, *fields.values(), states.REVOKED, states.SUCCESS, states.STARTED,
                                 lease_start, lease_start])
            stored = cursor.fetchone()
            if stored is None:
                cursor.execute(f"SELECT status, worker FROM {table} WHERE task_id = %s", [task_id])
                raise JobSettled(task_id, *cursor.fetchone())
            pk, started_before, worker_before, status_before = stored
            if status == states.STARTED and started_before is not None:
                # Delivered again (its worker lost mid-run, a retry, a requeued dead letter): the
                # earlier delivery is kept on the job's record before this one's start replaces it.
                # A job delivered once, nearly all of them, pays nothing for this.
                record_table = quote(apps.get_model("jobs", "JobRecord")._meta.db_table)
                delivery = {"started_at": started_before.isoformat(), "worker": worker_before,
                            "ended": DELIVERY_ENDINGS.get(status_before, status_before)}
                cursor.execute(f"UPDATE {record_table} SET deliveries = deliveries || %s::jsonb WHERE result_id = %s",
                               [json.dumps([delivery]), pk])

    # What a later state changes in the row its job's launch recorded: the arguments too, as the worker
    # ran them (a chain's step gets its predecessor's result); name and encoding stay as recorded.
    STATE_FIELDS = ("status", "result", "traceback", "meta", "worker", "date_done", "date_started", "task_args",
                    "task_kwargs")

    def _state_updated(self, connection, table, task_id, fields) -> bool:
        """Store a state after the start (progress, an outcome) in the row its launch recorded: a plain
        UPDATE, a quarter of the upsert's work for PostgreSQL (which plans the upsert's lease and
        delivery clauses each time, for a start only). False if there is no such row to update: none
        (a job sent without a record), or a REVOKED one, which store_result's upsert leaves alone."""
        changed = [name for name in self.STATE_FIELDS if name in fields]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {', '.join(f'{connection.ops.quote_name(name)} = %s' for name in changed)} "
                "WHERE task_id = %s AND status <> %s",
                [*(fields[name] for name in changed), task_id, states.REVOKED])
            return cursor.rowcount == 1

    def status_of(self, task_id: str, using: str | None = None) -> str | None:
        """The job's stored state (None with no row), read where its states are written."""
        connection = connections[using or router.db_for_write(self.model._meta.concrete_model)]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status FROM {connection.ops.quote_name(self.model._meta.db_table)} "
                           "WHERE task_id = %s", [task_id])
            row = cursor.fetchone()
        return row and row[0]

    def mark_started(self, task_id: str, result: str, worker: str, started: datetime, using: str | None = None) -> None:
        """Record a run STARTED, as it was at `started`, if its record is still PENDING: not once it
        reported progress or ended, was cancelled or claimed by another delivery (started.py). Committed
        without waiting for the disk, as every STARTED write (store_result)."""
        alias = using or router.db_for_write(self.model._meta.concrete_model)

        def write():
            connection = connections[alias]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SET LOCAL synchronous_commit TO OFF; UPDATE {connection.ops.quote_name(self.model._meta.db_table)} "
                    "SET status = %s, result = %s, worker = %s, date_started = %s, date_done = %s "
                    "WHERE task_id = %s AND status = %s",
                    [states.STARTED, result, worker, started, timezone.now(), task_id, states.PENDING])

        retried_on_a_new_connection(alias, write)

    def delete_expired(self, expires: timedelta | float) -> int:
        """Delete results done longer than `expires` ago, a batch at a time; return how many."""
        expired = self.filter(date_done__lt=timezone.now() - maybe_timedelta(expires)).order_by()
        deleted = 0
        while batch := list(expired.values_list("pk", flat=True)[: self.delete_batch_size]):
            deleted += self.filter(pk__in=batch).delete()[0]
        return deleted
