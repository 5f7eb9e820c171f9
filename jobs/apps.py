from django.apps import AppConfig
from django.db.models.signals import pre_save


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        # Register the tasks in every process, not only in workers, so the catalog is complete
        # wherever jobs are launched from.
        from . import schedules, tasks  # noqa: F401

        # django-celery-beat's models are not ours to give a clean(): check them before any save.
        pre_save.connect(schedules.check_periodic_task_before_save, sender=PeriodicTask)
        pre_save.connect(schedules.check_crontab_before_save, sender=CrontabSchedule)
