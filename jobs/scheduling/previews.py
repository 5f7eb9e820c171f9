"""How a periodic task reads: its schedule in words and its next runs.

Next run times are computed by the same Celery schedule objects beat uses, so the preview in the
admin is what beat will do, daylight-saving transitions included.
"""
from datetime import UTC, datetime

from django.utils import timezone
from django_celery_beat.models import PeriodicTask


def schedule_in_words(task: PeriodicTask) -> str:
    """'every 30 seconds', 'At 07:30, only on Monday (Asia/Shanghai)', 'once at …'."""
    if task.interval:
        return str(task.interval)
    if task.crontab:
        words = task.crontab.human_readable
        zone = str(task.crontab.timezone)
        return f"{words.removesuffix(zone).strip()} ({zone})"
    if task.solar:
        return str(task.solar)
    if task.clocked:
        return f"once at {timezone.localtime(task.clocked.clocked_time):%Y-%m-%d %H:%M %Z}"
    return "no schedule"


def next_runs(task: PeriodicTask, count: int = 5, now: datetime | None = None) -> list[datetime]:
    """The next `count` times beat will send `task`, as beat's own schedule objects compute them."""
    now = now or timezone.now()
    if not task.enabled or task.scheduler is None:
        return []
    if task.clocked:
        return [] if task.total_run_count else [task.clocked.clocked_time]
    if task.expires and task.expires <= now:
        return []
    schedule = task.schedule
    # A crontab's next slot is a wall-clock time in its own time zone; zoneinfo then resolves its
    # offset, so a daily 07:30 stays 07:30 across a daylight-saving change, as it does in beat.
    zone = getattr(schedule, "tz", None) or UTC
    moment = max(filter(None, [now, task.start_time])).astimezone(zone)
    # Intervals run `every` after the last run (or after now, when there was none yet);
    # crontabs and solar events at their next slot after now.
    last_run = task.last_run_at.astimezone(zone) if task.interval and task.last_run_at else moment
    schedule.nowfun = lambda: moment
    runs = []
    while len(runs) < (1 if task.one_off else count):
        if task.crontab:
            start, delta, _ = schedule.remaining_delta(last_run)
            upcoming = start + delta
        else:
            upcoming = moment + schedule.remaining_estimate(last_run)
        upcoming = max(upcoming, moment)
        if task.expires and upcoming >= task.expires:
            break
        runs.append(upcoming.astimezone(UTC))
        moment = last_run = upcoming
    return runs
