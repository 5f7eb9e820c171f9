"""Queues (paused or not) and workers (their heartbeat's description)."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class Queue(models.Model):
    """A job queue as operators control it: paused or not. Remembered here, so a worker started
    later stays off a paused queue too; its depth, consumers and rates are the broker's, read live."""

    name = models.CharField(max_length=200, primary_key=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        permissions = [("operate_queue", "Can pause, resume and purge queues and handle dead letters")]

    def __str__(self):
        return self.name + (" (paused)" if self.paused_at else "")


class Worker(models.Model):
    """A Celery worker as its last heartbeat described it (jobs/queues/workers.py). Kept in the database,
    so the workers page survives restarts of the site and of the workers."""

    hostname = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, help_text="The queues it was started to consume.")
    consuming = models.JSONField(default=list, help_text="The queues it consumes now (not the paused ones).")
    broker_address = models.CharField(max_length=100, blank=True, help_text=(
        "Its end of its broker connection (host:port): the broker's consumers are matched to it by this."))
    concurrency = models.PositiveIntegerField(default=0, help_text="Pool size: jobs it can run at once.")
    processed = models.PositiveBigIntegerField(default=0, help_text="Jobs it has run since it started.")
    running = models.JSONField(default=list, help_text="The jobs it is running: [{id, name}].")
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When it shut down cleanly.")

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname

    @property
    def status(self) -> str:
        """stopped (shut down cleanly), lost (silent for three heartbeats), busy or idle."""
        if self.stopped_at:
            return "stopped"
        silent = (timezone.now() - self.last_heartbeat).total_seconds()
        if silent > 3 * settings.WORKER_HEARTBEAT_SECONDS:
            return "lost"
        return "busy" if self.running else "idle"
