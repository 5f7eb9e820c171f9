"""The checks that keep a bad schedule out of the periodic-task table, wherever it is saved from."""
import json

from celery import current_app, schedules
from django.core.exceptions import ValidationError
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from ..catalog import find_job
from ..exceptions import InvalidArguments, UnknownJob


def periodic_task_problem(task: PeriodicTask) -> str:
    """Why a stored periodic task would not be sent (empty when it is fine): for the admin's list,
    and for beat, which skips such a row instead of stopping."""
    try:
        periodic_task_check(task)
    except ValidationError as exc:
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return ""


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


def routing_errors(task: PeriodicTask) -> dict[str, str]:
    """What is wrong with a periodic task's queue, exchange, routing key and priority: a queue no
    worker reads would keep its jobs waiting forever, and the queues order priorities 0 to 9."""
    queues = {queue.name: queue for queue in current_app.conf.task_queues or ()}
    known = {
        "queue": set(queues),
        "exchange": {queue.exchange.name for queue in queues.values()},
        "routing_key": {queue.routing_key for queue in queues.values()},
    }
    errors = {
        field: f"No {field.replace('_', ' ')} {value!r} is configured: its jobs would wait where no worker "
               f"reads. Leave it empty, or use one of: {', '.join(sorted(known[field]))}."
        for field, value in ((field, getattr(task, field)) for field in known) if value and value not in known[field]
    }
    top = current_app.conf.task_queue_max_priority
    if task.priority is not None and top is not None and not 0 <= task.priority <= top:
        errors["priority"] = f"Priorities run from 0 to {top} ({top} first); leave it empty for the default."
    return errors


def periodic_task_check(task: PeriodicTask) -> None:
    """Refuse a periodic task whose arguments do not fit its job's declared parameters, or whose
    queue, exchange, routing key or priority the broker's queues do not have.

    Tasks outside the catalog (Celery's own, such as celery.backend_cleanup) must at least be
    registered; catalog jobs must also get arguments their type hints accept.
    """
    arguments, errors = {}, routing_errors(task)
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
