"""Beat at volume: thousands of enabled periodic tasks, one beat, every due run measured."""
import os
import statistics
import time
from collections import defaultdict
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.exceptions import UnknownJob
from jobs.testing.broker import throwaway_vhost
from jobs.testing.databases import throwaway_database
from jobs.testing.processes import Beat, wait_for

JOB = "jobs.add"  # the examples app's add(x, y)
PREFIX = "bench-"
SCHEDULERS = {
    "this project": "jobs.scheduling.beat:SingleBeatScheduler",
    "django-celery-beat": "django_celery_beat.schedulers:DatabaseScheduler",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP = 10  # seconds of sending before the measured window opens


class MeasuredBeat(Beat):
    """A beat with the scheduler given, ready once it logs that it starts."""

    def __init__(self, scheduler: str, environment: dict[str, str]):
        super().__init__(environment)
        self.command = [*self.command, "--scheduler", scheduler]

    def ready(self):
        return "beat: Starting..." in self.output()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


class Command(BaseCommand):
    help = (
        "Fill a throwaway database with enabled periodic tasks (intervals and crontabs), run one beat "
        "against them, and report how late each due run was sent, runs missed or sent twice, how fast "
        "admin edits reach beat, and beat's CPU and database load. Each scheduler in turn, same load."
    )

    def add_arguments(self, parser):
        parser.add_argument("--schedules", type=int, default=10_000, help="Enabled periodic tasks.")
        parser.add_argument("--crontab-share", type=float, default=0.2,
                            help="Share of crontabs (hourly, spread over the minutes); the rest are intervals.")
        parser.add_argument("--every", type=int, default=48,
                            help="The intervals' period in seconds (48: 167 due a second from 8,000 intervals).")
        parser.add_argument("--seconds", type=int, default=120, help="How long each beat is measured.")
        parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), action="append",
                            help="Measure only these (default: all, in turn).")

    def handle(self, *args, schedules, crontab_share, every, seconds, scheduler, **options):
        if schedules < 1 or not 0 <= crontab_share <= 1 or every < 1 or seconds < 10:
            raise CommandError("--schedules and --every must be at least 1, --seconds at least 10, "
                               "--crontab-share between 0 and 1.")
        try:
            find_job(JOB)
        except UnknownJob as exc:
            raise CommandError(f"The benchmark schedules {JOB} (the examples app): install that app. {exc}") from exc
        intervals = round(schedules * (1 - crontab_share))
        self.stdout.write(
            f"{schedules} enabled periodic tasks of {JOB}: {intervals} intervals every {every} s "
            f"({intervals / every:.0f} due a second) and {schedules - intervals} hourly crontabs "
            f"(about {(schedules - intervals) / 60:.0f} due at the start of each minute); {seconds} s per beat.\n"
        )
        for name in scheduler or SCHEDULERS:
            with throwaway_database("beat"), throwaway_vhost(current_app.conf.broker_url, "bench_beat") as broker:
                self.stdout.write(f"{name} ({SCHEDULERS[name]})")
                self.measure(SCHEDULERS[name], broker, schedules, intervals, every, seconds)

    def measure(self, scheduler, broker, schedules, intervals, every, seconds):
        start = timezone.now() + timedelta(seconds=20)  # the first due runs, once beat has read the table
        self.fill(start, schedules, intervals, every)
        beat = MeasuredBeat(scheduler, {"CELERY_BROKER_URL": broker})
        launched = time.monotonic()
        beat.start()
        try:
            wait_for(lambda: TaskResult.objects.filter(periodic_task_name__startswith=PREFIX).exists(),
                     timeout=60, interval=0.2, message="beat's first send")
            self.stdout.write(f"  started and sent its first run after {time.monotonic() - launched:.1f} s")
            # Runs fall due from `start`, whether beat is ready or not; the window measured opens
            # once it has sent for WARM_UP seconds (what came due before is reported apart).
            opens = max(start, timezone.now() + timedelta(seconds=WARM_UP))
            wait_for(lambda: timezone.now() >= opens, timeout=60, interval=0.1, message="the window's start")
            cpu, database = beat.cpu_seconds(), self.database_load()
            changes = self.edit_while_running(opens + timedelta(seconds=seconds), every)
            cpu = beat.cpu_seconds() - cpu
            database = {key: value - database[key] for key, value in self.database_load().items()}
        finally:
            beat.stop()
        self.report(start, opens, seconds, every, intervals, changes, cpu, database)

    def fill(self, start: datetime, schedules: int, intervals: int, every: int) -> None:
        """Intervals staggered so that as many fall due each second; crontabs at every minute of the hour."""
        interval = IntervalSchedule.objects.create(every=every, period=IntervalSchedule.SECONDS)
        crontabs = [CrontabSchedule.objects.create(minute=str(minute), hour="*", timezone=settings.TIME_ZONE)
                    for minute in range(60)]
        tasks = []
        for n in range(schedules):
            task = PeriodicTask(name=f"{PREFIX}{n}", task=JOB, kwargs=f'{{"x": {n}, "y": 1}}')
            if n < intervals:
                task.interval = interval
                task.last_run_at = start + timedelta(seconds=every * n / intervals - every)
            else:
                task.crontab = crontabs[n % 60]
            tasks.append(task)
        PeriodicTask.objects.bulk_create(tasks, batch_size=2000)
        PeriodicTasks.update_changed()

    def edit_while_running(self, end: datetime, every: int) -> dict:
        """Every ten seconds, as in the admin: add a task due now (how long until it is sent?) and
        disable an interval whose next run is more than five seconds away (is it still sent?)."""
        added, disabled = {}, {}
        interval = IntervalSchedule.objects.get(every=every)
        number = 0
        while timezone.now() < end:
            time.sleep(max(0.0, min(10.0, (end - timezone.now()).total_seconds())))
            if timezone.now() >= end:
                break
            number += 1
            now = timezone.now()
            task = PeriodicTask.objects.create(  # save(): signals beat, as the admin does
                name=f"{PREFIX}added-{number}", task=JOB, kwargs='{"x": 0, "y": 0}', interval=interval,
                last_run_at=now - timedelta(seconds=every),
            )
            added[task.name] = now
            victim = (PeriodicTask.objects.filter(name__startswith=PREFIX, interval__isnull=False, enabled=True,
                                                  last_run_at__gt=now + timedelta(seconds=5 - every))
                      .exclude(name__startswith=f"{PREFIX}added").order_by("last_run_at").first())
            if victim:
                victim.enabled = False
                victim.save()
                disabled[victim.name] = timezone.now()
        return {"added": added, "disabled": disabled, "end": end}

    def database_load(self) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute(
                "SELECT xact_commit, tup_returned + tup_fetched, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
            commits, read, written = cursor.fetchone()
        return {"transactions": commits, "rows read": read, "rows written": written}

    def report(self, start, opens, seconds, every, intervals, changes, cpu, database):
        end = changes["end"]
        sends = defaultdict(list)
        for name, sent in (TaskResult.objects.filter(periodic_task_name__startswith=PREFIX)
                           .values_list("periodic_task_name", "date_created").order_by("date_created")):
            sends[name].append(sent)
        tasks = {task.name: task for task in PeriodicTask.objects.filter(name__startswith=PREFIX)
                 .select_related("crontab")}
        late, missed, twice = [], [], 0  # late: (due, seconds late); missed: due
        for name, task in tasks.items():
            if name in changes["added"]:
                continue
            times = sends[name]
            if task.crontab_id:
                for due in minute_starts(start, end - timedelta(seconds=1), int(task.crontab.minute)):
                    following = due + timedelta(minutes=1)
                    sent = [t for t in times if due <= t < following]
                    if sent:
                        late.append((due, (sent[0] - due).total_seconds()))
                        twice += len(sent) - 1
                    else:
                        missed.append(due)
                        late.append((due, (end - due).total_seconds()))
                continue
            # An interval falls due `every` seconds after its last run was sent; first as filled.
            due = start + timedelta(seconds=every * int(name.removeprefix(PREFIX)) / intervals)
            stop = changes["disabled"].get(name, end)
            for sent in times:
                if sent >= stop:
                    break
                if sent < due - timedelta(seconds=1):  # beat never sends early: this run was sent already
                    twice += 1
                    continue
                late.append((due, (sent - due).total_seconds()))
                due = sent + timedelta(seconds=every)
            if due < stop - timedelta(seconds=1):  # due a second before the end, and still not sent
                missed.append(due)
                late.append((due, (stop - due).total_seconds()))
        disabled_sent = sum(1 for name, at in changes["disabled"].items()
                            if any(t > at + timedelta(seconds=5) for t in sends[name]))
        reached = [(sends[name][0] - at).total_seconds() for name, at in changes["added"].items() if sends[name]]
        total = sum(len(times) for times in sends.values())

        def quantile(values, q):
            return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]

        warming = [seconds_late for due, seconds_late in late if due < opens]
        slices = defaultdict(list)  # lateness by ten seconds of the window, to see when runs were late
        for due, seconds_late in late:
            if due >= opens:
                slices[int((due - opens).total_seconds() // 10)].append(seconds_late)
        late = [seconds_late for due, seconds_late in late if due >= opens]
        if warming:
            self.stdout.write(f"  while it started: {len(warming)} runs fell due before the window, sent up to "
                              f"{max(warming):.1f} s late; {sum(1 for due in missed if due < opens)} never sent")
        self.stdout.write(f"  sent {total} runs; {len(late)} due in the window")
        if late:
            self.stdout.write(
                f"  lateness: p50 {quantile(late, 50) * 1000:.0f} ms, p99 {quantile(late, 99) * 1000:.0f} ms, "
                f"max {max(late) * 1000:.0f} ms; {sum(1 for v in late if v > 1)} sent more than 1 s late")
            self.stdout.write("  p99 by ten seconds of the window: " + ", ".join(
                f"{quantile(slices[n], 99) * 1000:.0f}" for n in sorted(slices)) + " ms")
        # Every send is a due run's (on time or late), a second send of one, or an added task's.
        added = sum(len(sends[name]) for name in changes["added"])
        unaccounted = total - (len(warming) + len(late) - len(missed)) - twice - added
        self.stdout.write(f"  missed (due, not sent by the end): {sum(1 for due in missed if due >= opens)}; "
                          f"sent twice: {twice}; sent when not due: {unaccounted}")
        self.stdout.write(
            f"  admin edits: {len(reached)}/{len(changes['added'])} added tasks sent, after "
            + (f"max {max(reached):.1f} s (median {statistics.median(reached):.1f} s)" if reached else "never")
            + f"; {disabled_sent}/{len(changes['disabled'])} disabled tasks sent more than 5 s after")
        self.stdout.write(f"  beat CPU: {cpu:.1f} s in {seconds} s ({100 * cpu / seconds:.0f}% of a core)")
        self.stdout.write("  database (beat's, and this command's few edits): " + ", ".join(
            f"{value / seconds:.0f} {key}/s" for key, value in database.items()) + "\n")


def minute_starts(start: datetime, end: datetime, minute: int):
    """The times between start and end when a crontab at `minute` past every hour falls due."""
    moment = start.replace(second=0, microsecond=0)
    while moment <= end:
        if moment >= start and moment.minute == minute:
            yield moment
        moment += timedelta(minutes=1)
