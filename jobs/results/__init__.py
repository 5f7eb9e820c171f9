"""The result backend: django-celery-results' database backend, writing each state change in one
statement and refusing to start a job that is settled (jobs/results/managers.py).

``CELERY_RESULT_BACKEND = "jobs.results:DatabaseBackend"``; the Celery fixup that keeps workers'
database connections is ``jobs.results.fixups:install_django_fixup``.
"""


def __getattr__(name: str):
    if name == "DatabaseBackend":  # loaded when Celery asks for it, once Django's apps are ready
        from .backend import DatabaseBackend

        return DatabaseBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
