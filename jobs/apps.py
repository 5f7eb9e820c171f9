from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Register the tasks in every process, not only in workers, so the catalog is complete
        # wherever jobs are launched from.
        from . import tasks  # noqa: F401
