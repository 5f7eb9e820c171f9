"""A run's STARTED state, written once the run has lasted JOBS_STARTED_AFTER_SECONDS rather than as it
starts.

Most jobs end within milliseconds, and for them the STARTED write was a statement and a commit per job
that nobody could see (a third of PostgreSQL's work per job: docs/explanation/benchmarks.md). What that
write did at the start, and how each is kept:

- It checked the record: a job cancelled while queued (REVOKED) is not run, a finished one is not run
  again, one that may be running elsewhere is not run beside it. The start still reads the record's
  state (one primary-key read, no write); only a PENDING record lets the write wait, and any other
  state takes the full write, which decides as before (managers.StoredResultManager.store_result).
- It claimed the run against another delivery of the same message. Two deliveries of one message can
  run at once only when RabbitMQ delivers it again (flagged `redelivered`) because the first worker's
  connection or channel went while that worker may still be running it. That first run started before
  its channel closed (Celery drops the messages it held but had not started) and so before the second
  delivery arrived: a redelivered message that finds the record PENDING waits until such a run would
  have marked itself (the threshold and REDELIVERED_MARGIN), then claims as always, and finds it marked
  (and running elsewhere), done, or neither (nobody runs it: it runs).
- It showed the job running: after the threshold, on every page and in the API. A job that ends sooner
  goes from PENDING to its outcome.
- It recorded when and where the job started: the outcome records both (DatabaseBackend).

Jobs whose limits count STARTED runs, and unique jobs whose key is let go when they start, are marked
as they start (JobTask.marked_at_start). The mark is written by one thread per worker process, on a
database connection of its own, which it closes whenever no other run waits for a mark.
"""
import logging
import os
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

# How long after the threshold a mark may take to be seen: the marking thread's wake-up and its write.
REDELIVERED_MARGIN = 1.0


def started_after(task, request) -> float | None:
    """Seconds into this run of `task` (its `request`) at which to mark it STARTED, or None to mark it
    as it starts: with the threshold at 0, for a job run in place (eager), or one marked at its start."""
    after = settings.JOBS_STARTED_AFTER_SECONDS
    if not after or task is None or getattr(task, "marked_at_start", False) or request is None \
            or getattr(request, "is_eager", False) or not isinstance(getattr(request, "delivery_info", None), dict):
        return None
    return after


class Marks:
    """The runs of this process waiting for their mark: each mark is called once its time comes, on a
    thread of the process's own, unless it is taken back first (the run ended, or reported progress).

    The thread is woken only when it waits with nothing to mark; otherwise it wakes when the earliest
    mark it knew of falls due. A stream of short runs, each armed and taken back within milliseconds,
    thus wakes it about once per threshold, not once per run (a wake-up per run cost more than the
    write it saved: the pool process handing the GIL to the thread and back).
    """

    def __init__(self):
        self._due: dict[str, tuple[float, Callable[[], None]]] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = False

    def arm(self, task_id: str, after: float, mark: Callable[[], None]) -> None:
        with self._changed:
            self._due[task_id] = (time.monotonic() + after, mark)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="started-marks", daemon=True)
                self._thread.start()
            elif self._idle:
                self._changed.notify()

    def disarm(self, task_id: str) -> None:
        with self._changed:
            self._due.pop(task_id, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not (due := [task_id for task_id, (at, _) in self._due.items() if at <= time.monotonic()]):
                    self._idle = not self._due
                    self._changed.wait(None if self._idle else
                                       min(at for at, _ in self._due.values()) - time.monotonic())
                self._idle = False
                marks = [self._due.pop(task_id)[1] for task_id in due]
            for mark in marks:
                try:
                    mark()
                except Exception:
                    logger.exception("Could not mark a running job STARTED.")
            if not self._due:
                connections.close_all()  # this thread's: none is kept open while no run waits for a mark


marks = Marks()


def _forked() -> None:
    """A forked process (a pool process) starts with no runs and no thread of its parent's."""
    global marks
    marks = Marks()


os.register_at_fork(after_in_child=_forked)


def arm(task_id: str, after: float, mark: Callable[[], None]) -> None:
    marks.arm(task_id, after, mark)


def disarm(task_id: str) -> None:
    marks.disarm(task_id)


def retried_on_a_new_connection(alias: str, write: Callable[[], None]) -> None:
    """`write` on this thread's connection to `alias`; once more on a new one if that connection broke
    (a PostgreSQL restart since the thread's last mark)."""
    try:
        write()
    except (OperationalError, InterfaceError):
        connections[alias].close()
        write()
