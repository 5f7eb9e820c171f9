from django.apps import AppConfig
from django.db.models.signals import pre_save


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from celery.signals import before_task_publish, task_retry
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        # Register the tasks in every process, not only in workers, so the catalog is complete
        # wherever jobs are launched from.
        from . import schedules, services, tasks  # noqa: F401

        # django-celery-beat's models are not ours to give a clean(): check them before any save.
        pre_save.connect(schedules.check_periodic_task_before_save, sender=PeriodicTask)
        pre_save.connect(schedules.check_crontab_before_save, sender=CrontabSchedule)

        # Every job has a record from the moment it is sent, whoever sends it.
        before_task_publish.connect(services.job_record_published)
        task_retry.connect(services.job_record_retried)
