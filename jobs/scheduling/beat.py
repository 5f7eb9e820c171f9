"""The beat scheduler: django-celery-beat's DatabaseScheduler, one at a time, at most once a slot.

- One beat schedules at a time. Each beat process takes a lock in Redis that expires unless renewed
  on every tick; a second beat (another container, a deploy overlap) waits and takes over within
  BEAT_LOCK_TIMEOUT seconds of the first one dying.
- A run is claimed in the database before its message is sent, by a conditional update of the
  task's last_run_at: a beat killed in between loses that one run instead of sending it again
  after a restart or takeover; a beat that stalled holding a lock it has since lost finds the run
  claimed by the other one and sends nothing; a one-off task never runs twice.
"""
import logging

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Q
from django_celery_beat.schedulers import DatabaseScheduler

from . import checks

logger = logging.getLogger(__name__)



def lock_name() -> str:
    """One lock per periodic-task table: beats of other databases (the tests') are independent."""
    return f"jobs:beat-lock:{connection.settings_dict['NAME']}"


class SingleBeatScheduler(DatabaseScheduler):
    standby_interval = 1.0  # seconds between a waiting beat's tries for the lock

    def __init__(self, *args, **kwargs):
        self.lock = redis.Redis.from_url(settings.REDIS_URL).lock(
            lock_name(), timeout=settings.BEAT_LOCK_TIMEOUT, thread_local=False
        )
        self.holds_lock = False
        self.standing_by = False
        self.unclaimed = set()  # runs reserved but claimed by another beat first: not to be sent
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if not self._keep_lock():
            return self.standby_interval
        # Come back in time to renew the lock, however far away the next run is.
        return min(super().tick(*args, **kwargs), settings.BEAT_LOCK_TIMEOUT / 3)

    def _keep_lock(self) -> bool:
        """Renew the lock if held, else try to take it; True while this beat may schedule."""
        try:
            if self.holds_lock:
                try:
                    self.lock.reacquire()
                    return True
                except redis.exceptions.LockError:
                    logger.error("beat: lost the scheduling lock; standing by.")
                    self.holds_lock = False
            if self.lock.acquire(blocking=False):
                logger.info("beat: took the scheduling lock; scheduling.")
                self.holds_lock, self.standing_by = True, False
                # The previous holder may have sent tasks since this process read the table: read it
                # again, and drop Celery's heap too. On an initial read django-celery-beat keeps the
                # heap, whose entries still carry the last_run_at this beat knew when it lost the
                # lock, so a run the other beat has just sent would be sent again.
                self._initial_read = True
                self._heap = None
                return True
        except redis.exceptions.RedisError as exc:
            # Without the lock no beat can know it is the only one: send nothing until Redis is back.
            logger.error("beat: cannot reach Redis for the scheduling lock (%s); standing by.", exc)
            self.holds_lock = False
            return False
        if not self.standing_by:
            logger.warning("beat: another beat holds the scheduling lock; standing by.")
            self.standing_by = True
        return False

    def enabled_models(self):
        """The enabled periodic tasks beat can send; one that no longer passes the checks (written
        around them: raw SQL, a migration, a job whose signature changed) is disabled, with the
        reason in the log and in the admin's list, and never stops the others."""
        sendable = []
        for model in super().enabled_models():
            problem = checks.periodic_task_problem(model)
            if problem:
                logger.error("beat: disabled periodic task %r, which cannot be sent: %s", model.name, problem)
                type(model)._default_manager.filter(pk=model.pk).update(enabled=False)
            else:
                sendable.append(model)
        return sendable

    def reserve(self, entry):
        """Advance the entry and claim the run in the database before its message is sent.

        The claim is one conditional UPDATE: the row's last_run_at moves from the time this beat
        last knew to now. If another beat has moved it since (it sent this run while this one was
        stalled, holding a lock it had lost), the claim fails and apply_entry sends nothing.
        """
        known = entry.last_run_at  # this entry's own view: the model object is shared, and moves on
        new_entry = super().reserve(entry)
        model = new_entry.model
        claimed = type(model)._default_manager.filter(
            Q(last_run_at=known) | Q(last_run_at__isnull=True), pk=model.pk
        ).update(last_run_at=model.last_run_at, total_run_count=model.total_run_count)
        self._dirty.discard(new_entry.name)
        if not claimed:
            self.unclaimed.add(entry.name)
        return new_entry

    def apply_entry(self, entry, producer=None):
        if entry.name in self.unclaimed:
            self.unclaimed.discard(entry.name)
            logger.warning("beat: %r was sent by another beat meanwhile; not sending it again.", entry.name)
            self._initial_read, self._heap = True, None  # this beat's view is stale: read it again
            return
        super().apply_entry(entry, producer=producer)

    def close(self):
        super().close()
        if self.holds_lock:
            try:
                self.lock.release()
            except redis.exceptions.RedisError:
                pass  # it expires by itself
