"""Scheduling: django-celery-beat run by one beat at a time (a Redis lock), sending due runs in batches
and recording them; the periodic-task admin with its checks, previews and "Run now"."""
