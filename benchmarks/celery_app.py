"""The Celery app of the peers that run on stock Celery, configured from `benchmarks.settings`."""
import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
django.setup()

app = Celery("benchmarks")
app.config_from_object("django.conf:settings", namespace="CELERY")
