from django.apps import AppConfig
from django.db.models.signals import pre_save


class JobsConfig(AppConfig):
    """The job engine: the catalog, job records, the result backend, scheduling, and the pages,
    API router and admin that show them. Needs no other app of this project."""

    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from celery.signals import (
            before_task_publish,
            celeryd_after_setup,
            task_failure,
            task_retry,
            task_success,
            worker_ready,
            worker_shutdown,
        )
        from django.utils.module_loading import autodiscover_modules
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        from . import receivers, workers

        # Every installed app's tasks.py, in every process (web too, not only workers): the
        # catalog is complete wherever jobs are launched from, as admin.py is for the admin.
        autodiscover_modules("tasks")

        # django-celery-beat's models are not ours to give a clean(): check them before any save.
        pre_save.connect(receivers.periodic_task_saving, sender=PeriodicTask)
        pre_save.connect(receivers.crontab_saving, sender=CrontabSchedule)
        # Every job has a record from the moment it is sent, whoever sends it.
        before_task_publish.connect(receivers.job_published)
        task_retry.connect(receivers.job_retried)
        task_success.connect(receivers.job_succeeded)
        task_failure.connect(receivers.job_failed)
        worker_ready.connect(receivers.worker_ready)
        # Workers keep their description in the database and stay off paused queues.
        celeryd_after_setup.connect(workers.worker_setting_up)
        worker_shutdown.connect(workers.worker_shutdown)
