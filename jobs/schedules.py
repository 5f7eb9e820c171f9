"""Periodic tasks: the checks that keep a bad schedule out of the table, and how one reads.

Next run times are computed by the same Celery schedule objects beat uses, so the preview in the
admin is what beat will do, daylight-saving transitions included.
"""
import json
from datetime import datetime
from datetime import timezone as dt_timezone

from celery import schedules
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from .catalog import InvalidArguments, UnknownJob, find_job
from site_config.celery import app

def crontab_check(crontab: CrontabSchedule) -> None:
    """Refuse a crontab with values out of range or a date that never comes (31 February).

    Celery's own parser finds both; a combination with a day of the week always comes round.
    """
    try:
        schedules.crontab(
            minute=crontab.minute, hour=crontab.hour, day_of_week=crontab.day_of_week,
            day_of_month=crontab.day_of_month, month_of_year=crontab.month_of_year,
        )
    except ValueError as exc:
        message = str(exc)
        raise ValidationError(message if message.startswith("Invalid crontab") else f"Invalid crontab: {message}") from exc


def periodic_task_check(task: PeriodicTask) -> None:
    """Refuse a periodic task whose arguments do not fit its job's declared parameters.

    Tasks outside the catalog (Celery's own, such as celery.backend_cleanup) must at least be
    registered; catalog jobs must also get arguments their type hints accept.
    """
    arguments, errors = {}, {}
    for field, kind, expected in (("args", list, "Positional arguments must be a JSON list, e.g. [2, 3]."),
                                  ("kwargs", dict, 'Keyword arguments must be a JSON object, e.g. {"name": "Ada"}.')):
        try:
            arguments[field] = json.loads(getattr(task, field) or json.dumps(kind()))
        except ValueError as exc:
            errors[field] = f"Not valid JSON: {exc}."
            continue
        if not isinstance(arguments[field], kind):
            errors[field] = expected
    if errors:
        raise ValidationError(errors)
    try:
        job = find_job(task.task)
    except UnknownJob as exc:
        if task.task in app.tasks:
            return
        raise ValidationError({"task": str(exc)}) from exc
    try:
        job.validate_arguments(arguments["args"], arguments["kwargs"])
    except InvalidArguments as exc:
        raise ValidationError({"kwargs" if arguments["kwargs"] else "args": str(exc)}) from exc


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
    zone = getattr(schedule, "tz", None) or dt_timezone.utc
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
        runs.append(upcoming.astimezone(dt_timezone.utc))
        moment = last_run = upcoming
    return runs


def check_periodic_task_before_save(sender, instance: PeriodicTask, **kwargs) -> None:
    """pre_save: the same check for rows saved from code and fixtures, not only the admin."""
    periodic_task_check(instance)


def check_crontab_before_save(sender, instance: CrontabSchedule, **kwargs) -> None:
    """pre_save: no crontab that can never fire, wherever it is saved from."""
    crontab_check(instance)
