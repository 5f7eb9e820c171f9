"""The Celery app, configured from Django settings (`celery -A site_config worker|beat`)."""
import os

from celery import Celery
from celery.signals import worker_ready
from celery.fixups import django as django_fixup
from django.db import close_old_connections
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_config.settings")


class TaskAsRequestWorkerFixup(django_fixup.DjangoWorkerFixup):
    """Handle database connections around a task the way Django does around a request.

    Stock Celery closes every connection before and after each task, so each task pays for a
    new PostgreSQL connection (about two thirds of a short task's cost here). Django's request
    cycle instead keeps a connection for CONN_MAX_AGE and, with CONN_HEALTH_CHECKS, checks it
    before reuse, which also replaces a connection broken by a PostgreSQL restart.
    Forked pool processes still drop the parent's connections (`_close_database`).
    """

    def close_database(self, **kwargs):
        close_old_connections()


class DjangoFixup(django_fixup.DjangoFixup):
    """Celery's Django fixup, with the worker half replaced by TaskAsRequestWorkerFixup."""

    @property
    def worker_fixup(self):
        if self._worker_fixup is None:
            self._worker_fixup = TaskAsRequestWorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value):
        self._worker_fixup = value


def install_django_fixup(app):
    """Install DjangoFixup on `app` (the hook Celery calls for each name in `fixups`)."""
    return DjangoFixup(app).install()


app = Celery("site_config", fixups=["site_config.celery:install_django_fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def declare_dead_letter_queue(sender, **kwargs):
    """The exchange the job queues dead-letter to, and the queue that keeps those messages
    (for inspection in RabbitMQ's management UI). Declaring is idempotent."""
    from django.conf import settings

    exchange = Exchange(settings.DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    with sender.app.connection_for_write() as connection:
        Queue(settings.DEAD_LETTER_QUEUE, exchange, durable=True, queue_arguments=settings.DEAD_LETTER_RETENTION).declare(
            channel=connection.default_channel
        )
