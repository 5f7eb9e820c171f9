"""The worker's side of the limits: a thread in each worker's main process sends the jobs waiting on their
limits as their limits let them (services.limits_dispatch). Every worker runs one; the keys' locks keep
them from sending a key's jobs twice, so the limits hold however many workers there are, and the jobs
go on while any worker is up."""
import logging
import threading
import time

from celery import states
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from ..catalog import JobTask, catalog
from .services import job_ended, limit_in_force, limits_dispatch, settled_delete

logger = logging.getLogger(__name__)
BUSY_SECONDS = 0.05  # between passes while jobs wait on their limits
IDLE_SECONDS = 0.5  # between passes while none does: a launch under its limit is sent at once, not by this
SWEEP_SECONDS = 10  # between two sweeps of the slots of jobs that ended without word (their worker was lost)


class Dispatcher(threading.Thread):
    def __init__(self, tasks):
        super().__init__(name="jobs-limits", daemon=True)
        self.tasks = tasks
        self.stopping = threading.Event()

    def run(self):
        swept_at = -SWEEP_SECONDS
        while True:
            close_old_connections()  # a connection PostgreSQL dropped is replaced, not reused
            try:
                if time.monotonic() - swept_at > SWEEP_SECONDS:
                    settled_delete()
                    swept_at = time.monotonic()
                sent, waiting = limits_dispatch(self.tasks)
            except DatabaseError as exc:
                logger.warning("Jobs waiting on their limits not dispatched: %s", exc)
                sent, waiting = 0, True
            except Exception:  # a broker outage: the jobs stay waiting, and go once it is back
                logger.exception("Jobs waiting on their limits not dispatched")
                sent, waiting = 0, True
            if self.stopping.wait(0 if sent else BUSY_SECONDS if waiting else IDLE_SECONDS):
                return

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


_dispatcher: Dispatcher | None = None


def worker_ready(sender, **kwargs) -> None:
    """worker_ready: start this worker's dispatcher, when the catalog has limited jobs (and JOBS_LIMITS_DISPATCH)."""
    global _dispatcher
    tasks = {name: task for name, task in catalog().items() if task.limit is not None}
    if tasks and getattr(settings, "JOBS_LIMITS_DISPATCH", True):
        _dispatcher = Dispatcher(tasks)
        _dispatcher.start()


def worker_shutdown(**kwargs) -> None:
    if _dispatcher is not None:
        _dispatcher.stop()


def job_finished(sender: JobTask, task_id: str, kwargs: dict, state: str, **_) -> None:
    """task_postrun (in the pool process): a job under a concurrency limit that ended frees its slot at once.
    Not a delivery the job was not run for (IGNORED: it may still run elsewhere), which holds on to it."""
    if state in states.READY_STATES and isinstance(sender, JobTask) and sender.limit is not None and limit_in_force(sender)[1]:
        try:
            job_ended(sender, task_id, kwargs or {})
        except DatabaseError as exc:  # freed by a dispatcher's sweep instead
            logger.warning("Job %s: its limit's slot not freed at once: %s", task_id, exc)
