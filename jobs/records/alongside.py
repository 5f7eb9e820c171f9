"""A job sent from code outside a transaction is recorded alongside its publish: the record's statement
goes to PostgreSQL on a connection of the process's own before the message goes to the broker, and
its answer is read once the broker has confirmed the message (after_task_publish). The two round
trips overlap instead of following each other: a send from code takes a quarter less time or more
(bench_peers, docs/explanation/benchmarks.md).

A send promises what it did before: the record is committed when `apply_async` returns, and one that
cannot be written is logged while the job is published anyway (Celery's signals log what their
receivers raise). The statement reaches PostgreSQL before the message reaches the broker, so a worker
finds the record; should a worker be quicker and write the job's row itself, as it does for any job
sent without a record, the record is written again on Django's connection and takes that row
(services.job_record_again). So is one whose connection broke (a PostgreSQL restart, an idle timeout).

One connection a process, opened when it first sends: a send while another thread of the process is
writing its record writes its own the usual way, on Django's connection, rather than wait. A thread
whose publish raised reads its record's answer when it next sends; until then the others write theirs
the usual way."""
import logging
import os
import threading
from collections.abc import Callable
from types import SimpleNamespace

import psycopg2
from django.conf import settings
from django.db import connection
from psycopg2.extras import wait_select

logger = logging.getLogger(__name__)

state = SimpleNamespace(lock=threading.Lock(), conn=None, pending=None)  # pending: cursor, again, thread
inherited = []  # a parent process's connections, kept from being closed here, which would close the parent's


def usable() -> bool:
    """Whether a send now can be recorded alongside: on PostgreSQL, with no transaction to join,
    unless JOBS_RECORD_ALONGSIDE is off."""
    return getattr(settings, "JOBS_RECORD_ALONGSIDE", True) and connection.vendor == "postgresql" and \
        not connection.in_atomic_block


def record_start(sql: str, parameters: list, again: Callable[[], None]) -> bool:
    """Send the record's statement, which commits on its own, without waiting for its answer; `again`
    writes the record the usual way, should this fail. False if the connection is busy: the caller
    writes the record the usual way."""
    record_finish()  # one this thread left, its publish having raised
    if not state.lock.acquire(blocking=False):
        return False
    try:
        if state.conn is None or state.conn.closed:
            parameters_of_django = connection.get_connection_params()
            parameters_of_django.pop("cursor_factory", None)  # Django's, for its own connections
            state.conn = psycopg2.connect(async_=True, **parameters_of_django)
            wait_select(state.conn)
        cursor = state.conn.cursor()  # kept until its answer is read: psycopg2 drops the query otherwise
        cursor.execute(sql, parameters)
    except psycopg2.Error as exc:
        record_failed(exc, again)
    else:
        state.pending = (cursor, again, threading.get_ident())
    return True


def record_finish() -> None:
    """Read the answer of the record this thread is writing, if it is writing one."""
    if state.pending is None or state.pending[2] != threading.get_ident():
        return
    (cursor, again, _), state.pending = state.pending, None
    try:
        wait_select(cursor.connection)
    except psycopg2.Error as exc:
        record_failed(exc, again)
    else:
        state.lock.release()


def record_failed(error: psycopg2.Error, again: Callable[[], None]) -> None:
    if not isinstance(error, psycopg2.errors.UniqueViolation):  # a worker wrote the row: the connection is fine
        logger.info("A job's record, written alongside its publish, failed (%s): writing it again.", error)
        if state.conn is not None:
            state.conn.close()
    state.lock.release()
    again()


def close() -> None:
    """Close the process's connection (a test run's end, before its database is dropped)."""
    record_finish()
    if state.conn is not None:
        state.conn.close()


def forked() -> None:
    if state.conn is not None:
        inherited.append(state.conn)
    state.lock, state.conn, state.pending = threading.Lock(), None, None


os.register_at_fork(after_in_child=forked)
