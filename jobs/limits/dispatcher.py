"""The worker's side of the limits: a thread in each worker's main process sends the jobs waiting on their
limits as their limits let them (services.limits_dispatch). Every worker runs one; the keys' locks keep
them from sending a key's jobs twice, so the limits hold however many workers there are, and the jobs
go on while any worker is up."""
import logging
import threading

from django.db import DatabaseError, close_old_connections

from ..catalog import catalog
from .services import limits_dispatch

logger = logging.getLogger(__name__)
BUSY_SECONDS = 0.05  # between passes while jobs wait on their limits
IDLE_SECONDS = 0.5  # between passes while none does: a launch under its limit is sent at once, not by this


class Dispatcher(threading.Thread):
    def __init__(self, tasks):
        super().__init__(name="jobs-limits", daemon=True)
        self.tasks = tasks
        self.stopping = threading.Event()

    def run(self):
        while True:
            close_old_connections()  # a connection PostgreSQL dropped is replaced, not reused
            try:
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
    """worker_ready: start this worker's dispatcher, when the catalog has limited jobs."""
    global _dispatcher
    tasks = {name: task for name, task in catalog().items() if task.limit is not None}
    if tasks:
        _dispatcher = Dispatcher(tasks)
        _dispatcher.start()


def worker_shutdown(**kwargs) -> None:
    if _dispatcher is not None:
        _dispatcher.stop()
