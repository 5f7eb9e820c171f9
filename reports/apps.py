from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """The report job (the seeds' weekly report) and its files."""

    name = "reports"
    verbose_name = "Reports"
