"""Signal receivers of scheduling, connected in JobsConfig.ready(): django-celery-beat's models are not
ours to give a clean(), so they are checked before any save."""
from . import checks


def periodic_task_saving(sender, instance, **kwargs) -> None:
    """pre_save of a PeriodicTask: the admin's checks, for rows saved from code and fixtures too.

    Not for a row saved disabled: beat disables a finished one-off, or a row it cannot send,
    by saving it, and that must work even when the row no longer validates."""
    if instance.enabled:
        checks.periodic_task_check(instance)


def crontab_saving(sender, instance, **kwargs) -> None:
    """pre_save of a CrontabSchedule: no crontab that can never fire, wherever it is saved from."""
    checks.crontab_check(instance)
