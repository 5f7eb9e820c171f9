"""The worker's side of the operations pages, run in each worker's main process.

Every WORKER_HEARTBEAT_SECONDS a worker writes what it is (queues, pool size, jobs processed and
running) to the Worker table, so the workers page outlives restarts, as Flower's memory does not;
and it keeps to its own queues, less the paused ones: a worker started while a queue is paused never
consumes it, and one that missed a pause or resume broadcast, or was told to consume a queue it was
not started for, is put right at its next heartbeat.
"""
import logging
import os
import threading
import time

from celery.worker import state
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from ..limits.dispatcher import Dispatcher, worker_dispatcher
from . import broker, selectors, services

logger = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """The thread that describes this worker every few seconds and keeps it off paused queues."""

    def __init__(self, consumer, queues: list[str], dispatcher: Dispatcher | None = None):
        super().__init__(name="jobs-heartbeat", daemon=True)
        self.consumer, self.queues, self.dispatcher = consumer, queues, dispatcher
        self.hostname = consumer.hostname
        self.started_at = timezone.now()
        self.stopping = threading.Event()

    def run(self):
        """A heartbeat every WORKER_HEARTBEAT_SECONDS and, between them, the passes of the dispatcher of the
        jobs waiting on their limits (jobs/limits/dispatcher.py), on this thread's one connection."""
        next_beat = time.monotonic()
        while True:
            if time.monotonic() >= next_beat:
                close_old_connections()  # a connection PostgreSQL dropped is replaced, not reused
                try:
                    self.beat()
                except DatabaseError as exc:
                    logger.warning("Worker heartbeat not recorded: %s", exc)
                except Exception:
                    logger.exception("Worker heartbeat failed")
                next_beat = time.monotonic() + settings.WORKER_HEARTBEAT_SECONDS
            wait = next_beat - time.monotonic()
            if self.dispatcher is not None:
                wait = min(wait, self.dispatcher.step())
            if self.stopping.wait(max(0.0, wait)):
                return

    def consuming(self) -> list[str]:
        task_consumer = self.consumer.task_consumer
        return sorted(queue.name for queue in (task_consumer.queues if task_consumer else []))

    def broker_address(self) -> str:
        """This worker's end of its broker connection, as the broker's consumer list shows it."""
        try:
            host, port = self.consumer.connection.connection.sock.getsockname()[:2]
        except (AttributeError, OSError):  # reconnecting
            return ""
        return f"{host}:{port}"

    def beat(self):
        consuming = self.consuming()
        services.worker_heartbeat(
            hostname=self.hostname, pid=os.getpid(), queues=self.queues, consuming=consuming,
            broker_address=self.broker_address(),
            concurrency=self.consumer.pool.num_processes if self.consumer.pool else 0,
            processed=state.all_total_count[0], started_at=self.started_at,
            running=[{"id": request.id, "name": request.name} for request in list(state.active_requests)],
        )
        # What it should consume: the queues it was started for, less the paused ones. A queue it
        # was not started for (a broadcast add_consumer, by hand or from an older version) is
        # dropped, so a worker keeps to its queues whatever it was told.
        wanted = set(self.queues) - selectors.paused_queues()
        for queue in sorted(set(consuming) - wanted):
            services.consumers_tell("cancel_consumer", queue, destination=[self.hostname])
        for queue in sorted(wanted - set(consuming)):
            services.consumers_tell("add_consumer", queue, destination=[self.hostname])

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)
        services.worker_stopped(hostname=self.hostname)


_heartbeat: Heartbeat | None = None


def worker_setting_up(sender: str, instance, **kwargs) -> None:
    """celeryd_after_setup: before the worker consumes anything, declare every job queue (for
    delayed delivery: broker.job_queues_declare) and leave out the paused queues."""
    try:
        broker.job_queues_declare()
    except broker.BrokerUnavailable as exc:  # not there yet: the worker's own connection waits for it
        logger.warning("Could not declare the job queues: %s", exc)
    queues = instance.app.amqp.queues
    instance.jobs_queues = sorted(queues.consume_from)  # what it was started for, paused or not
    try:
        paused = selectors.paused_queues() & set(instance.jobs_queues)
    except DatabaseError as exc:  # consume everything now; the first heartbeat that reaches it pauses
        logger.warning("Could not read the paused queues: %s", exc)
        return
    if paused:
        logger.info("Not consuming the paused queues %s", ", ".join(sorted(paused)))
        queues.deselect(paused)


def worker_ready(sender, **kwargs) -> None:
    """worker_ready: declare the dead-letter exchange and queue; start this worker's heartbeat (and its
    dispatcher of the jobs waiting on their limits)."""
    global _heartbeat
    broker.dead_letter_queue_declare()
    _heartbeat = Heartbeat(sender, getattr(sender.controller, "jobs_queues", []), dispatcher=worker_dispatcher())
    _heartbeat.start()


def worker_shutdown(**kwargs) -> None:
    """worker_shutdown: a clean stop is recorded, so the worker is shown stopped, not lost."""
    if _heartbeat is not None:
        _heartbeat.stop()
