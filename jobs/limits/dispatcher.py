"""The worker's side of the limits: each worker sends the jobs waiting on their limits as their limits let
them (services.limits_dispatch), a pass at a time, from its housekeeping thread (jobs/queues/workers.py: the
heartbeat's, so it costs the worker no database connection of its own). Every worker dispatches; the keys'
locks keep them from sending a key's jobs twice, so the limits hold however many workers there are, and
the jobs go on while any worker is up."""
import logging
import time

from celery import states
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from ..catalog import JobTask, catalog
from .services import job_ended, limit_in_force, limits_dispatch, settled_delete

logger = logging.getLogger(__name__)
MIN_SECONDS = 0.01  # the shortest wait between two passes
IDLE_SECONDS = 0.5  # the longest: a launch under its limit is sent at once, a slot freed at its job's end
SWEEP_SECONDS = 10  # between two sweeps of the slots of jobs that ended without word (their worker was lost)


class Dispatcher:
    def __init__(self, tasks: dict[str, JobTask]):
        self.tasks = tasks
        self.swept_at = -SWEEP_SECONDS

    def step(self) -> float:
        """One pass over the keys with jobs due; the seconds to wait before the next."""
        try:
            if time.monotonic() - self.swept_at > SWEEP_SECONDS:
                settled_delete()
                self.swept_at = time.monotonic()
            sent, rate_wait = limits_dispatch(self.tasks)
        except DatabaseError as exc:
            logger.warning("Jobs waiting on their limits not dispatched: %s", exc)
            close_old_connections()  # a connection PostgreSQL dropped is replaced at the next pass
            return IDLE_SECONDS
        except Exception:  # a broker outage: the jobs stay waiting, and go once it is back
            logger.exception("Jobs waiting on their limits not dispatched")
            return IDLE_SECONDS
        # At once after a pass that sent jobs; when a rate holds jobs back, as it lets the next go; else (none
        # waits, or a concurrency slot does, which a job's end frees at once) a pass now and then.
        return 0 if sent else min(max(rate_wait, MIN_SECONDS), IDLE_SECONDS) if rate_wait is not None else IDLE_SECONDS


def worker_dispatcher() -> Dispatcher | None:
    """This worker's dispatcher: when the catalog has limited jobs, unless JOBS_LIMITS_DISPATCH is off."""
    tasks = {name: task for name, task in catalog().items() if task.limit is not None}
    return Dispatcher(tasks) if tasks and getattr(settings, "JOBS_LIMITS_DISPATCH", True) else None


def job_finished(sender: JobTask, task_id: str, kwargs: dict, state: str, **_) -> None:
    """task_postrun (in the pool process): a job under a concurrency limit that ended frees its slot at once.
    Not a delivery the job was not run for (IGNORED: it may still run elsewhere), which holds on to it."""
    if state in states.READY_STATES and isinstance(sender, JobTask) and sender.limit is not None \
            and limit_in_force(sender)[1]:
        try:
            job_ended(sender, task_id, kwargs or {})
        except DatabaseError as exc:  # freed by a dispatcher's sweep instead
            logger.warning("Job %s: its limit's slot not freed at once: %s", task_id, exc)
