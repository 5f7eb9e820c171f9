"""Reads of the queues, their consumers and dead letters, and the workers."""
import time
from datetime import timedelta
from typing import Any

from celery import current_app, states
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_celery_results.models import TaskResult

from ..records.selectors import COUNT_CAP
from . import broker
from .models import Queue, Worker

# How long the queues' state read for job pages is reused: a page polling every second, or a list of
# 50 queued jobs, costs two small queries a few seconds, not two per job.
QUEUES_SERVED_SECONDS = 3
_queues_served: tuple[float, set[str], set[str]] = (0.0, set(), set())


def job_waiting_reason(queue: str) -> str | None:
    """Why a job queued on `queue` may wait for nobody: the queue is paused, or no live worker (by
    their heartbeats) consumes it. None when a worker will take it in its turn."""
    global _queues_served
    read_at, paused, consumed = _queues_served
    if time.monotonic() - read_at > QUEUES_SERVED_SECONDS:
        heard_since = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
        alive = Worker.objects.filter(stopped_at=None, last_heartbeat__gte=heard_since)
        paused, consumed = paused_queues(), {queue for queues in alive.values_list("consuming", flat=True) for queue in queues}
        _queues_served = (time.monotonic(), paused, consumed)
    if not queue:
        return None
    if queue in paused:
        return f"Queue {queue} is paused: no worker takes its jobs until an operator resumes it."
    if queue not in consumed:
        return f"No worker is consuming queue {queue}: the job waits until one is started for it."
    return None


def paused_queues() -> set[str]:
    """The names of the queues paused now."""
    return set(Queue.objects.filter(paused_at__isnull=False).values_list("name", flat=True))


def job_queue_names() -> list[str]:
    """The queues jobs go to: the configured ones and any an operator has acted on."""
    configured = [queue.name for queue in current_app.amqp.queues.values()]
    return sorted(set(configured) | set(Queue.objects.values_list("name", flat=True)))


def queues_overview() -> tuple[list[dict[str, Any]], broker.QueueStats | None, str]:
    """Each job queue with the broker's figures for it (None where the broker cannot say) and its
    paused state; the dead-letter queue's figures; and the broker's error, or "" when it answered."""
    try:
        stats, error = broker.queues_stats(), ""
    except broker.BrokerUnavailable as exc:  # RabbitMQ itself may still answer: its counts are shown
        stats, error = {}, str(exc)
    try:
        # Depths and consumers as of now, not as of the management API's last sample: the page
        # shown after a purge, a pause or a launch agrees with what was just done.
        for name, (ready, consumers) in broker.queues_counted([*job_queue_names(), settings.DEAD_LETTER_QUEUE]).items():
            stats.setdefault(name, broker.QueueStats(name=name))
            stats[name].ready, stats[name].consumers = ready, consumers
    except broker.BrokerUnavailable as exc:
        stats, error = {}, str(exc)
    paused = {queue.name: queue for queue in Queue.objects.filter(paused_at__isnull=False).select_related("paused_by")}
    rows = []
    for name in job_queue_names():
        figures = stats.get(name)
        rows.append({
            "name": name, "stats": figures, "paused": paused.get(name),
            # Jobs that nobody will take: waiting on a queue that no worker consumes, unpaused.
            "stranded": bool(figures and figures.ready and not figures.consumers and name not in paused),
        })
    return rows, stats.get(settings.DEAD_LETTER_QUEUE), error


def workers_recent() -> QuerySet[Worker]:
    """The workers heard from in the last day (the lost and stopped among them); older rows are
    history nobody acts on."""
    return Worker.objects.filter(last_heartbeat__gte=timezone.now() - timedelta(days=1))


def workers_overview() -> list[Worker]:
    """The recent workers, busy and idle ones first."""
    order = {"busy": 0, "idle": 1, "lost": 2, "stopped": 3}
    return sorted(workers_recent(), key=lambda worker: (order[worker.status], worker.hostname))


def consumers_by_worker() -> tuple[dict[str, list[broker.Consumer]], list[broker.Consumer]]:
    """The broker's consumers by the hostname of the worker they belong to (matched on the address
    of its broker connection, which its heartbeat names), and those of no known worker. Raises
    BrokerUnavailable."""
    hostnames = dict(workers_recent().exclude(broker_address="").values_list("broker_address", "hostname"))
    by_worker, unknown = {}, []
    for consumer in broker.consumers(job_queue_names()):
        if consumer.address in hostnames:
            by_worker.setdefault(hostnames[consumer.address], []).append(consumer)
        else:
            unknown.append(consumer)
    return by_worker, unknown


def queue_consumers(name: str) -> list[tuple[str | None, broker.Consumer]]:
    """The consumers of queue `name`, each with its worker's hostname (None: not a known worker)."""
    by_worker, unknown = consumers_by_worker()
    return ([(hostname, consumer) for hostname, found in sorted(by_worker.items()) for consumer in found
             if consumer.queue == name] + [(None, consumer) for consumer in unknown if consumer.queue == name])


WAITING_SHOWN = 50


def queue_waiting(name: str) -> tuple[list[TaskResult], int]:
    """The oldest jobs recorded as sent to queue `name` and not yet taken (PENDING): the messages
    waiting in it, read from their records rather than taken from the broker (a look at a quorum
    queue's messages counts as a delivery, and six dead-letter them). And how many, to COUNT_CAP."""
    waiting = TaskResult.objects.select_related("record__launched_by").filter(status=states.PENDING, record__queue=name)
    # A workflow's step is in the queue once sent; before that, it waits for its parents, not here.
    waiting = waiting.filter(Q(record__step__isnull=True) | Q(record__step__sent_at__isnull=False))
    return list(waiting.order_by("date_created")[:WAITING_SHOWN]), waiting[:COUNT_CAP].count()


def dead_letters_peek(*, limit: int = 200) -> tuple[list[broker.DeadLetter], int]:
    """The first `limit` messages of the dead-letter queue (left in it), and how many it holds."""
    letters, total = [], 0
    with broker.broker_channel() as channel:
        for messages in broker.messages_taken(channel, settings.DEAD_LETTER_QUEUE, batch=limit):
            letters = [broker.DeadLetter.from_message(message) for message in messages]
            total = len(messages) + messages[-1].delivery_info["message_count"]
            break
    return letters, total
