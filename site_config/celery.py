"""The Celery app, configured from Django settings (`celery -A site_config worker|beat`)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_config.settings")

# The engine's fixup keeps workers' database connections between tasks (jobs/results/fixups.py).
app = Celery("site_config", fixups=["jobs.results.fixups:install_django_fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
