from django.apps import AppConfig
from django.db.models.signals import pre_save


class JobsConfig(AppConfig):
    """The job engine: the catalog, job records, the result backend, workflows, scheduling,
    operations and the pages, API routers and admin that show them. Needs no other app of this project."""

    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from celery.signals import (
            after_task_publish,
            before_task_publish,
            celeryd_after_setup,
            task_failure,
            task_postrun,
            task_retry,
            task_success,
            worker_ready,
            worker_shutdown,
        )
        from django.utils.module_loading import autodiscover_modules
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        from .catalog import controlled_job_sending, settled_job_delivered
        from .limits import dispatcher
        from .queues import workers
        from .records import receivers as records
        from .scheduling import receivers as scheduling
        from .workflows import receivers as workflows

        # Every installed app's tasks.py, in every process (web too, not only workers): the
        # catalog is complete wherever jobs are launched from, as admin.py is for the admin.
        autodiscover_modules("tasks")

        pre_save.connect(scheduling.periodic_task_saving, sender=PeriodicTask)
        pre_save.connect(scheduling.crontab_saving, sender=CrontabSchedule)
        # Every job has a record from the moment it is sent, whoever sends it.
        before_task_publish.connect(records.job_published)
        after_task_publish.connect(records.job_publish_confirmed)
        task_retry.connect(records.job_retried)
        settled_job_delivered.connect(records.settled_job_delivered)
        # A unique job sent from code claims its key; a limited job waits for its limit.
        controlled_job_sending.connect(records.controlled_job_sending)
        # A step's outcome moves its workflow on.
        task_success.connect(workflows.job_succeeded)
        task_failure.connect(workflows.job_failed)
        settled_job_delivered.connect(workflows.settled_job_delivered)
        # Workers keep their description in the database and stay off paused queues.
        celeryd_after_setup.connect(workers.worker_setting_up)
        worker_ready.connect(workers.worker_ready)
        worker_shutdown.connect(workers.worker_shutdown)
        # A job under a concurrency limit frees its slot as it ends (the heartbeat sends the waiting ones).
        task_postrun.connect(dispatcher.job_finished)
