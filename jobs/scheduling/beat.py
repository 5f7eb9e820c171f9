"""The beat scheduler: django-celery-beat's DatabaseScheduler, one at a time, at most once a slot.

- One beat schedules at a time. Each beat process takes a lock in Redis that expires unless renewed
  (every second); a second beat (another container, a deploy overlap) waits and takes over within
  BEAT_LOCK_TIMEOUT seconds of the first one dying.
- A run is claimed in the database before its message is sent, by a conditional update of the
  task's last_run_at: a beat killed in between loses that one run instead of sending it again
  after a restart or takeover; a beat that stalled holding a lock it has since lost finds the run
  claimed by the other one and sends nothing; a one-off task never runs twice.
- Thousands of tasks: due runs are sent in batches, each claimed in one statement and recorded in
  one more (see tick).
"""
import heapq
import logging
import operator
import time
from datetime import timedelta
from functools import cached_property, reduce

import redis
from celery import current_app
from celery.beat import event_t
from celery.utils.nodenames import anon_nodename
from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import SCHEDULE_SYNC_MAX_INTERVAL, DatabaseScheduler

from ..catalog import JobTask, new_task_id
from ..exceptions import InvalidArguments
from ..publishing import Confirms
from ..records.services import job_publish_failed, job_queue, job_recorded, jobs_recorded, unique_key_claim
from . import checks

logger = logging.getLogger(__name__)

# The schedule rows a periodic task can be on, and their columns.
SCHEDULES = {kind: PeriodicTask._meta.get_field(kind).related_model for kind in ("interval", "crontab", "solar", "clocked")}
SCHEDULE_FIELDS = {kind: [field.attname for field in model._meta.concrete_fields if not field.primary_key]
                   for kind, model in SCHEDULES.items()}
# What an entry is built from: every column of a periodic task but those beat writes itself, and
# its schedule's. The name comes first.
FINGERPRINT = ["name", *(
    field.attname for field in PeriodicTask._meta.concrete_fields
    if field.name not in ("id", "name", "last_run_at", "total_run_count")
), *(f"{kind}__{field}" for kind, fields in SCHEDULE_FIELDS.items() for field in fields)]
# Seconds: an edit read is of the rows saved since the last read less this, for clocks that differ
# between hosts and saves committed after their timestamp.
EDIT_MARGIN = 10


def lock_name() -> str:
    """One lock per periodic-task table: beats of other databases (the tests') are independent."""
    return f"jobs:beat-lock:{connection.settings_dict['NAME']}"


class SingleBeatScheduler(DatabaseScheduler):
    standby_interval = 1.0  # seconds between a waiting beat's tries for the lock
    check_interval = 1.0  # seconds between lock renewals and looks for edits, while scheduling
    batch_window = 0.1  # seconds: runs due this close together are sent together
    batch_size = 500  # due runs sent per tick at most: a backlog still renews the lock each second

    def __init__(self, *args, **kwargs):
        self.lock = redis.Redis.from_url(settings.REDIS_URL).lock(
            lock_name(), timeout=settings.BEAT_LOCK_TIMEOUT, thread_local=False
        )
        self.holds_lock = False
        self.standing_by = False
        self._next_check = 0.0  # time.monotonic() of the next lock renewal and look at the table
        self._fingerprints = {}  # the rows the entries were built from, by primary key (the name first)
        self._last_read = 0.0
        self._taken_over = False  # the lock was taken: rows may have been sent by another beat since read
        self._read_at = timezone.now()  # when the table was last read
        self._schedule_rows = {}  # the schedule rows' values as last read, by kind and primary key
        super().__init__(*args, **kwargs)

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
                # The previous holder may have sent tasks since this process read the table: the
                # entries of those rows are built again, and Celery's heap, whose events still carry
                # the last_run_at this beat knew, too.
                self._taken_over = True
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

    def setup_schedule(self):
        super().setup_schedule()
        # The entries of the settings (beat_schedule, backend_cleanup) were written to the table as
        # rows: hold them as rows read from it.
        self._update_schedule()

    @property
    def schedule(self):
        """The entries by name, kept in step with the table: built from every row on the first read;
        then only those of rows that differ from what this beat holds are built again and queued
        (with thousands of tasks, rebuilding them all would hold every run up for seconds). Every
        row is compared on taking the lock over and every five minutes (for edits made without
        django-celery-beat's change signal: raw SQL, update()); after an edit, only the rows saved
        since (see _update_schedule)."""
        now = time.monotonic()
        if self._initial_read:
            self._initial_read = False
            self.sync()  # runs reserved but not yet written (django-celery-beat's reserve()), first
            self._schedule, self._fingerprints, self._heap = {}, {}, None
            self._update_schedule()
            self._last_read = now
        elif self._taken_over or now - self._last_read >= SCHEDULE_SYNC_MAX_INTERVAL:
            self.sync()
            if self._update_schedule(sent_elsewhere=self._taken_over):
                self._heap_invalidated = True  # as the stock scheduler: schedules_equal() says so once
            self._last_read, self._taken_over = now, False
        elif self.schedule_changed():
            self.sync()
            if self._update_schedule(edited_since=self._read_at - timedelta(seconds=EDIT_MARGIN)):
                self._heap_invalidated = True
        return self._schedule

    def _update_schedule(self, heappush=heapq.heappush, sent_elsewhere=False, edited_since=None) -> bool:
        """Bring the entries of the rows added, changed or removed since the last read up to date;
        whether any was. Every row is compared, unless `edited_since`: then those saved since (the
        admin's edits, which send django-celery-beat's change signal), those on schedule rows
        (intervals, crontabs...) changed since the last read, and those new to this beat; which
        rows are still there is read too, and a hundred thousand rows cost 50 ms, not 600. With
        `sent_elsewhere` (on taking the lock), also the rows whose last run is not the one their
        entry knows: another beat sent them meanwhile."""
        self._read_at = timezone.now()
        candidates = self.enabled_models_qs()
        schedules_edited = self._schedules_edited()
        if edited_since is not None:
            present = set(candidates.values_list("pk", flat=True))
            candidates = candidates.filter(reduce(operator.or_, [
                Q(pk__in=present - self._fingerprints.keys()), Q(date_changed__gte=edited_since), *schedules_edited]))
        rows, last_runs = {}, {}
        for pk, last_run_at, *fingerprint in candidates.values_list("pk", "last_run_at", *FINGERPRINT):
            rows[pk], last_runs[pk] = fingerprint, last_run_at
        if sent_elsewhere:
            held = {entry.model.pk: entry.model.last_run_at for entry in self._schedule.values()}
            for pk in held.keys() & self._fingerprints.keys():
                if last_runs.get(pk) not in (None, held[pk]):  # None: never sent (an entry makes one up)
                    self._fingerprints[pk] = self._fingerprints[pk][:1]  # its name alone: built again below
        changed = [pk for pk, fingerprint in rows.items() if self._fingerprints.get(pk) != fingerprint]
        removed = self._fingerprints.keys() - (rows.keys() if edited_since is None else present)
        for pk in [*removed, *changed]:  # removed, or to be built again
            if pk in self._fingerprints:  # under its old name, which a rename leaves behind
                self._schedule.pop(self._fingerprints.pop(pk)[0], None)
        models = self.Model.objects.filter(pk__in=changed).select_related("interval", "crontab", "solar", "clocked")
        for model in self._sendable(models):
            try:
                entry = self.Entry(model, app=self.app)
            except ValueError:
                continue
            self._schedule[model.name] = entry
            self._fingerprints[model.pk] = rows[model.pk]
            if self._heap is not None:  # else queued when the heap is built
                heappush(self._heap, self._event(entry))
        if changed:
            logger.info("beat: read %d new or changed periodic tasks; %d in all.", len(changed), len(self._schedule))
        return bool(changed or removed)

    def _schedules_edited(self) -> list[Q]:
        """Which periodic tasks are on schedule rows (intervals, crontabs, solar events, clocked
        times) changed since the last look: an edit there changes every task on the row, and saves
        none of them."""
        edited = []
        for kind, model in SCHEDULES.items():
            rows = {pk: values for pk, *values in model.objects.values_list("pk", *SCHEDULE_FIELDS[kind])}
            known = self._schedule_rows.get(kind, {})
            changed = [pk for pk, values in rows.items() if known.get(pk, values) != values]
            if changed:
                edited.append(Q(**{f"{kind}_id__in": changed}))
            self._schedule_rows[kind] = rows
        return edited

    def _is_due(self, entry):
        """(is it due, seconds until it is); an entry that cannot tell is logged and asked again
        later (as Celery): one broken entry must not stop the others."""
        try:
            return self.is_due(entry)
        except Exception:  # noqa: BLE001
            return self._is_due_failed(entry)

    def _event(self, entry):
        """The entry's place in the heap: when it is next due (as Celery's populate_heap)."""
        is_due, next_time_to_run = self._is_due(entry)
        return event_t(self._when(entry, 0 if is_due else next_time_to_run) or 0, 5, entry)

    def _sendable(self, models):
        """The periodic tasks beat can send; one that no longer passes the checks (written around
        them: raw SQL, a migration, a job whose signature changed) is disabled, with the reason in
        the log and in the admin's list, and never stops the others."""
        sendable = []
        for model in models:
            problem = checks.periodic_task_problem(model)
            if problem:
                logger.error("beat: disabled periodic task %r, which cannot be sent: %s", model.name, problem)
                type(model)._default_manager.filter(pk=model.pk).update(enabled=False)
            else:
                sendable.append(model)
        return sendable

    def tick(self, event_t=event_t, heappop=heapq.heappop, heappush=heapq.heappush):
        """Send every run that is due, in batches, and return the seconds until the next one.

        Celery's tick sends one run per call and, at each, looks for schedule changes (a query)
        and compares the whole schedule with its copy: with thousands of tasks that costs more than
        the send. Here the lock is renewed and the table looked at once a second at most, and a
        batch of due runs is claimed in one statement and recorded in another before each is
        published.
        """
        if time.monotonic() >= self._next_check:
            if not self._keep_lock():
                return self.standby_interval
            self._next_check = time.monotonic() + self.check_interval
            schedule = self.schedule  # reads the table's edits
            if self._heap is None:
                self._heap = [self._event(entry) for entry in schedule.values()]
                heapq.heapify(self._heap)
        heap, started, due, later = self._heap, time.time(), [], []
        while heap and heap[0][0] <= started and len(due) < self.batch_size:
            event = heappop(heap)
            entry = event[2]
            if self._schedule.get(entry.name) is not entry:
                continue  # replaced since it was queued
            is_due, next_time_to_run = self._is_due(entry)
            if is_due:
                due.append((event, entry, next_time_to_run))
            else:
                later.append(event_t(self._when(entry, next_time_to_run), event[1], entry))
        for event in later:
            heappush(heap, event)
        if due:
            self._send(due)
        # Runs falling due within a batch window of each other go together, a few milliseconds
        # later each: a statement and a wake-up per batch instead of per run. A backlog goes on at once.
        wait = max(heap[0][0], started + self.batch_window) - time.time() if heap else self.max_interval
        return max(0.0, min(wait, self.max_interval, self._next_check - time.monotonic()))

    def _send(self, due, event_t=event_t, heappush=heapq.heappush):
        """Claim the due runs, record them PENDING and publish them; queue each entry's next run."""
        claimed = self._claim([entry for _, entry, _ in due])
        runs = []
        for event, entry, next_time_to_run in due:
            if entry.name not in claimed:
                # Another beat sent this run while this one stalled holding a lock it had lost:
                # this beat's view is stale, so it reads the table again.
                logger.warning("beat: %r was sent by another beat meanwhile; not sending it again.", entry.name)
                self._taken_over, self._heap, self._next_check = True, None, 0.0
                continue
            new_entry = self._schedule[entry.name] = claimed[entry.name]
            if self._heap is not None:
                heappush(self._heap, event_t(self._when(new_entry, next_time_to_run), event[1], new_entry))
            runs.append((entry, new_task_id()))
        task_of = current_app.tasks.get
        runs = [(entry, task_id) for entry, task_id in runs if not self._held(task_of(entry.task), entry, task_id)]
        recorded = [
            {"task_id": task_id, "task_name": entry.task, "args": list(entry.args), "kwargs": entry.kwargs,
             "queue": entry.options.get("queue") or job_queue(entry.task),
             "periodic_task_name": entry.name}
            for entry, task_id in runs if job_recorded(task_of(entry.task))
        ]
        if runs:  # a line per batch: at 1,000 runs a second, a line per run cost more than its publish
            logger.info("beat: sending %d due runs: %s", len(runs),
                        ", ".join(entry.name for entry, _ in runs[:3]) + (", ..." if len(runs) > 3 else ""))
        size, queues, declared = self.app.amqp.argsrepr_maxsize, self.app.amqp.queues, set()
        with jobs_recorded(recorded):
            for entry, task_id in runs:
                logger.debug("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
                # The entry's last use (its next replaces it). What Celery works out for each message
                # is given instead where it is known, for it cost more than the publish itself: the
                # arguments as the row holds them, in JSON, for its repr of them; this process's name;
                # and the queue, declared once a batch rather than looked up in a cache at each.
                entry.options = {**entry.options, "task_id": task_id, "argsrepr": (entry.model.args or "[]")[:size],
                                 "kwargsrepr": (entry.model.kwargs or "{}")[:size], "origin": self.origin}
                queue = entry.options.get("queue") or job_queue(entry.task)
                try:
                    if queue in queues:
                        if queue not in declared:
                            self.producer.maybe_declare(queues[queue])
                            declared.add(queue)
                        entry.options["declare"] = []
                    self.confirms.publish((entry.name, task_id), self.apply_async, entry, producer=self.producer,
                                          advance=False)
                except Exception as exc:  # noqa: BLE001 - logged, recorded, and the others still go
                    logger.error("beat: could not send %r: %s", entry.name, exc)
                    job_publish_failed(task_id=task_id, error=exc)
            for (name, task_id), error in self.confirms.wait().items():
                logger.error("beat: could not send %r: %s", name, error)
                job_publish_failed(task_id=task_id, error=error)

    @cached_property
    def connection(self):
        """Celery's, without a wait for each message's confirm: a batch's are waited for at once."""
        return self.app.connection_for_write(transport_options={"confirm_publish": False})

    @cached_property
    def origin(self) -> str:
        return anon_nodename()

    @cached_property
    def confirms(self) -> Confirms:
        return Confirms(self.producer)

    @staticmethod
    def _held(task, entry, task_id: str) -> bool:
        """Whether this run is of a unique job whose key an identical job holds: then it is not sent."""
        if not isinstance(task, JobTask) or task.unique is None or not job_recorded(task):
            return False
        try:
            arguments = task.json_arguments(entry.args, entry.kwargs)
        except InvalidArguments:
            return False  # sent, for the worker to refuse where the schedule's page shows it
        holder = unique_key_claim(task, task_id, arguments)
        if holder:
            logger.info("beat: %r not sent: %s is unique and job %s holds its key.", entry.name, entry.task, holder)
        return bool(holder)

    def _claim(self, entries) -> dict:
        """Advance the entries and claim their runs in the database, in one statement; return the
        advanced entries of the runs claimed, by name.

        A claim moves the row's last_run_at from the time this beat last knew to now. If another
        beat has moved it since (it sent this run while this one was stalled, holding a lock it had
        lost), the claim fails and the run is not sent. A beat killed between claim and send loses
        those runs rather than sending them twice.
        """
        known = {entry.model.pk: entry.last_run_at for entry in entries}  # the model objects move on
        advanced = {entry.model.pk: next(entry) for entry in entries}
        table = PeriodicTask._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS task SET last_run_at = run.now, total_run_count = task.total_run_count + 1 "
                f"FROM (VALUES {', '.join(['(%s, %s, %s)'] * len(entries))}) AS run (id, known, now) "
                "WHERE task.id = run.id AND (task.last_run_at = run.known OR task.last_run_at IS NULL) "
                "RETURNING task.id",
                [value for pk, entry in advanced.items() for value in (pk, known[pk], entry.last_run_at)],
            )
            return {advanced[pk].name: advanced[pk] for (pk,) in cursor.fetchall()}

    def close(self):
        super().close()
        if self.holds_lock:
            try:
                self.lock.release()
            except redis.exceptions.RedisError:
                pass  # it expires by itself
