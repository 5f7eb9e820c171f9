"""Operating the queues: pause, resume and purge; dead letters; the workers' heartbeats and pools."""
import logging
from collections.abc import Callable

from celery import current_app, states
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from ..exceptions import WorkerUnreachable
from ..records.models import JobAction, JobRecord
from ..records.services import revoked_result
from ..workflows.services import workflow_steps_revoked
from . import broker
from .models import Queue, Worker

logger = logging.getLogger(__name__)


def consumers_tell(command: str, queue: str, destination: list[str] | None = None) -> None:
    """Ask workers (all, or `destination`) to start or stop consuming `queue`. Best effort: a
    worker that misses it is put right by its next heartbeat (jobs/queues/workers.py)."""
    if destination == []:  # Celery broadcasts to every worker when told no destination
        return
    try:
        getattr(current_app.control, command)(queue, destination=destination)
    except OperationalError as exc:
        logger.warning("Could not tell workers to %s %s: %s", command, queue, exc)


def queue_pause(*, name: str, user: AbstractBaseUser | None) -> None:
    """Stop every worker taking jobs from queue `name`, now and whenever one starts, until resumed.
    Jobs already handed to a worker (its prefetch) still run; the rest wait in the queue."""
    with transaction.atomic():
        Queue.objects.update_or_create(name=name, defaults={"paused_at": timezone.now(), "paused_by": user})
        JobAction.objects.create(kind=JobAction.Kind.PAUSE, queue=name, actor=user)
        transaction.on_commit(lambda: consumers_tell("cancel_consumer", name))


def queue_resume(*, name: str, user: AbstractBaseUser | None) -> None:
    """Let the workers started for queue `name`, and only them, take its jobs again. Told by name:
    a broadcast add_consumer would make every worker consume it. A worker with no heartbeat yet
    starts consuming at its first one."""
    with transaction.atomic():
        Queue.objects.update_or_create(name=name, defaults={"paused_at": None, "paused_by": None})
        JobAction.objects.create(kind=JobAction.Kind.RESUME, queue=name, actor=user)
        started_for = list(Worker.objects.filter(queues__contains=[name], stopped_at=None)
                           .values_list("hostname", flat=True))
        transaction.on_commit(lambda: consumers_tell("add_consumer", name, destination=started_for))


def worker_pool_resize(*, hostname: str, change: int, user: AbstractBaseUser | None) -> None:
    """Grow (change > 0) or shrink a worker's pool by `change` processes (Celery's pool_grow and
    pool_shrink; prefork pools only), audited. Raises WorkerUnreachable if it does not answer."""
    command = current_app.control.pool_grow if change > 0 else current_app.control.pool_shrink
    try:
        replies = command(abs(change), destination=[hostname], reply=True, timeout=3.0)
    except OperationalError as exc:
        raise WorkerUnreachable(f"The broker cannot be reached: {exc}") from exc
    answer = next((reply[hostname] for reply in replies if hostname in reply), None)
    if answer is None:
        raise WorkerUnreachable(f"Worker {hostname} did not answer within 3 seconds.")
    if "error" in answer:
        raise WorkerUnreachable(f"Worker {hostname} refused: {answer['error']}")
    JobAction.objects.create(kind=JobAction.Kind.POOL, worker=hostname, actor=user,
                             detail=f"{'+' if change > 0 else ''}{change} process{'es' if abs(change) != 1 else ''}")


def queue_purge(*, name: str, user: AbstractBaseUser | None) -> int:
    """Remove every message waiting in queue `name`; the jobs they carried end REVOKED, so none is
    left PENDING for ever. Returns how many messages were removed. Messages a worker holds (running,
    prefetched, or waiting for a countdown) are not in the queue and stay."""
    removed = 0
    result = revoked_result(f"purged from queue {name} by {user}")
    with broker.broker_channel() as channel:
        for messages in broker.messages_taken(channel, name):
            ids = [str(message.headers["id"]) for message in messages if (message.headers or {}).get("id")]
            # Recorded before the messages go: a crash in between leaves them queued, and a worker
            # then skips their jobs, which are REVOKED.
            TaskResult.objects.filter(task_id__in=ids, status=states.PENDING).update(
                status=states.REVOKED, date_done=timezone.now(), result=result)
            workflow_steps_revoked(task_ids=ids, why=f"was purged from queue {name} by {user}")
            channel.basic_ack(messages[-1].delivery_tag, multiple=True)
            removed += len(messages)
    JobAction.objects.create(kind=JobAction.Kind.PURGE, queue=name, actor=user, detail=f"{removed} messages")
    return removed


def dead_letters_handle(*, requeue: bool, chosen: Callable[[broker.DeadLetter], bool],
                        user: AbstractBaseUser | None) -> int:
    """Requeue to its original queue, or discard, every dead letter `chosen` accepts; audited on
    each job's record. A requeued job is PENDING again and runs under its own id. Returns how many."""
    handled = []
    with broker.broker_channel() as channel:
        letters = [letter for messages in broker.messages_taken(channel, settings.DEAD_LETTER_QUEUE)
                   for letter in map(broker.DeadLetter.from_message, messages)
                   # A message not dead-lettered from a queue has nowhere to go back to.
                   if chosen(letter) and (letter.queue or not requeue)]
        ids = [letter.task_id for letter in letters if letter.task_id]
        if requeue:
            # PENDING before the messages are back in their queues: a worker that runs one at once
            # then writes over this, not this over its outcome.
            before = dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "status"))
            TaskResult.objects.filter(task_id__in=ids).update(status=states.PENDING, date_done=timezone.now())
        try:
            for letter in letters:
                if requeue:  # through the default exchange, which routes to any queue by name; x-death
                    # stays, so a message that dies again shows how often it died
                    channel.basic_publish_confirm(broker.Message(letter.message.body, **letter.message.properties),
                                                  exchange="", routing_key=letter.queue)
                channel.basic_ack(letter.message.delivery_tag)
                handled.append(letter)
        finally:
            if requeue:  # those not sent back stay dead letters: their rows say what they said
                for letter in letters[len(handled):]:
                    if letter.task_id in before:
                        TaskResult.objects.filter(task_id=letter.task_id).update(status=before[letter.task_id])
    by_id = {letter.task_id: letter for letter in handled if letter.task_id}
    JobAction.objects.bulk_create([
        JobAction(record_id=pk, kind=JobAction.Kind.REQUEUE if requeue else JobAction.Kind.DISCARD, actor=user,
                  queue=by_id[task_id].queue, detail=f"after {by_id[task_id].count} deaths ({by_id[task_id].reason})")
        for pk, task_id in JobRecord.objects.filter(result__task_id__in=list(by_id)).values_list("pk", "result__task_id")
    ])
    return len(handled)


def worker_heartbeat(*, hostname: str, **description) -> None:
    """Keep what a worker says of itself: queues, pool, jobs processed and running (see Worker)."""
    Worker.objects.update_or_create(
        hostname=hostname, defaults={**description, "last_heartbeat": timezone.now(), "stopped_at": None})


def worker_stopped(*, hostname: str) -> None:
    """Mark a worker that shut down cleanly, so it is shown stopped rather than lost."""
    Worker.objects.filter(hostname=hostname).update(stopped_at=timezone.now(), running=[])
