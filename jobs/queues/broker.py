"""RabbitMQ as the operations pages read it and act on it.

Reading goes through RabbitMQ's management HTTP API: one request gives every queue's ready and
unacknowledged counts, consumers, publish/deliver/ack rates and the last minutes of its depth,
where AMQP tells only a queue's ready count and consumers. Acting (purging, dead letters) goes
through AMQP on the app's own broker connection, so each message taken is known by its job id.
"""
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import httpx
from amqp.basic_message import Message
from amqp.exceptions import ChannelError, NotFound
from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError

from .topology import dead_letter_queue

# The depth history the overview draws: ten minutes, a sample every 30 seconds.
DEPTH_HISTORY_SECONDS, DEPTH_SAMPLE_SECONDS = 600, 30


class BrokerUnavailable(Exception):
    """RabbitMQ, or its management API, cannot be reached or refused the request."""


@dataclass
class QueueStats:
    name: str
    ready: int = 0
    unacked: int = 0
    consumers: int = 0
    publish_rate: float = 0.0
    deliver_rate: float = 0.0
    ack_rate: float = 0.0
    depth_history: list[int] = field(default_factory=list)  # oldest first

    @classmethod
    def from_api(cls, queue: dict) -> "QueueStats":
        rates = queue.get("message_stats") or {}
        samples = (queue.get("messages_details") or {}).get("samples") or []
        return cls(
            name=queue["name"], ready=queue.get("messages_ready") or 0,
            unacked=queue.get("messages_unacknowledged") or 0, consumers=queue.get("consumers") or 0,
            publish_rate=(rates.get("publish_details") or {}).get("rate", 0.0),
            deliver_rate=(rates.get("deliver_get_details") or {}).get("rate", 0.0),
            ack_rate=(rates.get("ack_details") or {}).get("rate", 0.0),
            depth_history=[sample["sample"] for sample in reversed(samples)],
        )


def _broker_url() -> str:
    return current_app.conf.broker_url.split(";")[0]


def management_api() -> tuple[str, tuple[str, str], str]:
    """The management API's base URL, credentials and the broker's virtual host."""
    broker = urlsplit(_broker_url())
    vhost = unquote(broker.path[1:]) if len(broker.path) > 1 else "/"
    credentials = (unquote(broker.username or "guest"), unquote(broker.password or "guest"))
    configured = settings.RABBITMQ_MANAGEMENT_URL
    if not configured:
        return f"http://{broker.hostname or 'localhost'}:15672", credentials, vhost
    api = urlsplit(configured)
    if api.username:
        credentials = (unquote(api.username), unquote(api.password or ""))
    return f"{api.scheme}://{api.hostname}{f':{api.port}' if api.port else ''}{api.path.rstrip('/')}", credentials, vhost


def _management_get(path: str, params: dict | None = None) -> list[dict]:
    """GET `path` (under /api/, with {vhost} filled in) from the management API, as JSON."""
    base, credentials, vhost = management_api()
    try:
        response = httpx.get(f"{base}/api/{path.format(vhost=quote(vhost, safe=''))}", params=params,
                             auth=credentials, timeout=3.0)
    except httpx.HTTPError as exc:
        raise BrokerUnavailable(f"RabbitMQ's management API at {base} cannot be reached ({exc}). "
                                "Is the rabbitmq_management plugin enabled?") from exc
    if response.status_code != 200:
        raise BrokerUnavailable(f"RabbitMQ's management API at {base} answered {response.status_code}: "
                                f"{response.text[:200]}")
    return response.json()


def queues_stats() -> dict[str, QueueStats]:
    """Every queue of the broker's virtual host, by name, as the management API reports it now."""
    parameters = {"lengths_age": DEPTH_HISTORY_SECONDS, "lengths_incr": DEPTH_SAMPLE_SECONDS,
                  "msg_rates_age": 60, "msg_rates_incr": 10}
    return {queue["name"]: QueueStats.from_api(queue) for queue in _management_get("queues/{vhost}", parameters)}


@dataclass
class Consumer:
    """One consumer of a queue, as the broker sees it: the truth of who takes a queue's jobs."""
    queue: str
    address: str  # the client's end of its connection, "host:port": a worker's heartbeat names its own
    tag: str
    prefetch: int  # how many unacknowledged messages it may hold (0: no limit)
    ack_required: bool
    connected_at: datetime | None  # when its connection opened


def consumers(queues: list[str]) -> list[Consumer]:
    """Every consumer of `queues` in the broker's virtual host (three management API requests)."""
    opened = {connection["name"]: connection.get("connected_at")
              for connection in _management_get("vhosts/{vhost}/connections", {"columns": "name,connected_at"})}
    # Celery sets a classic queue's prefetch on its channel (global QoS), a quorum queue's on the consumer.
    channel_prefetch = {channel["name"]: channel.get("global_prefetch_count") or 0 for channel in
                        _management_get("vhosts/{vhost}/channels", {"columns": "name,global_prefetch_count"})}
    found = []
    for consumer in _management_get("consumers/{vhost}"):
        channel = consumer.get("channel_details") or {}
        if consumer["queue"]["name"] not in queues:  # a worker's remote-control queue, another app's
            continue
        if not channel.get("peer_host"):  # its connection is closing: the API lists it a few seconds more
            continue
        at = opened.get(channel.get("connection_name"))
        found.append(Consumer(
            queue=consumer["queue"]["name"], address=f"{channel.get('peer_host')}:{channel.get('peer_port')}",
            tag=consumer.get("consumer_tag", ""),
            prefetch=consumer.get("prefetch_count") or channel_prefetch.get(channel.get("name"), 0),
            ack_required=consumer.get("ack_required", True),
            connected_at=datetime.fromtimestamp(at / 1000, tz=UTC) if at else None))
    return sorted(found, key=lambda consumer: (consumer.queue, consumer.address))


def dead_letter_queue_declare() -> None:
    """Declare the exchange the job queues dead-letter to, and the queue that keeps those messages
    for inspection (idempotent)."""
    queue = dead_letter_queue(name=settings.DEAD_LETTER_QUEUE, exchange=settings.DEAD_LETTER_EXCHANGE,
                              queue_type=settings.BROKER_QUEUE_TYPE, retention=settings.DEAD_LETTER_RETENTION)
    with current_app.connection_for_write() as connection:
        queue.declare(channel=connection.default_channel)


@contextmanager
def broker_channel():
    """A channel of its own on the app's broker connection; messages taken and not acknowledged
    return to their queue, in their places, when it closes."""
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            try:
                yield channel
            finally:
                channel.close()
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(f"RabbitMQ cannot be reached ({exc}).") from exc


def queues_counted(names: list[str]) -> dict[str, tuple[int, int]]:
    """Each queue's ready messages and consumers this instant (AMQP passive declares), where the
    management API's figures are up to its statistics interval (5 s) old. Queues that do not
    exist are left out."""
    counted = {}
    with broker_channel() as channel:
        for name in names:
            try:
                _, ready, consumers = channel.queue_declare(queue=name, passive=True)
            except ChannelError:  # not declared: the broker closed this channel
                channel = channel.connection.channel()
                continue
            counted[name] = (ready, consumers)
    return counted


def job_queues_declare() -> None:
    """Declare every configured job queue, with its exchange (idempotent), not only the ones this
    worker consumes. Celery binds every configured queue to the broker's delayed-delivery exchange
    when a worker starts (quorum queues); on a fresh broker the queues other workers consume, and
    their exchanges, do not exist yet, the binding fails, and the worker logs CRITICAL "Failed to
    setup delayed delivery" while a queue after the failing one may be left unbound."""
    with broker_channel() as channel:
        for queue in current_app.amqp.queues.values():
            queue(channel).declare()


def messages_taken(channel, queue: str, *, batch: int = 500) -> Iterator[list[Message]]:
    """The messages of `queue`, taken in batches without acknowledging them: acknowledge a batch
    to remove it; the rest return to the queue when the channel closes. A queue not declared yet
    (no worker has started on this broker) holds nothing."""
    while True:
        messages = []
        try:
            while len(messages) < batch and (message := channel.basic_get(queue=queue, no_ack=False)) is not None:
                messages.append(message)
        except NotFound:
            return
        if not messages:
            return
        yield messages


@dataclass
class DeadLetter:
    """A message in the dead-letter queue, with what RabbitMQ says of its death (x-death)."""

    task_id: str
    task_name: str
    queue: str
    reason: str
    count: int
    died_at: datetime | None
    message: Message = field(repr=False)

    @classmethod
    def from_message(cls, message: Message) -> "DeadLetter":
        headers = message.headers or {}
        deaths = headers.get("x-death") or [{}]
        last = deaths[0]  # RabbitMQ puts the latest death first
        died_at = last.get("time")
        if isinstance(died_at, datetime) and died_at.tzinfo is None:
            died_at = died_at.replace(tzinfo=UTC)
        return cls(
            task_id=str(headers.get("id") or ""), task_name=str(headers.get("task") or ""),
            queue=str(last.get("queue") or ""), reason=str(last.get("reason") or ""),
            count=sum(death.get("count", 1) for death in deaths), died_at=died_at, message=message,
        )
