"""The checks that keep a bad schedule out of the periodic-task table, wherever it is saved from."""
import json

from celery import current_app, schedules
from django.core.exceptions import ValidationError
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from ..catalog import find_job
from ..exceptions import InvalidArguments, UnknownJob


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
        if task.task in current_app.tasks:
            return
        raise ValidationError({"task": str(exc)}) from exc
    try:
        job.validate_arguments(arguments["args"], arguments["kwargs"])
    except InvalidArguments as exc:
        raise ValidationError({"kwargs" if arguments["kwargs"] else "args": str(exc)}) from exc
