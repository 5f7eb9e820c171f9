"""Publishing many messages with the broker's confirms, without a round trip per message.

The project publishes with confirms (CELERY_BROKER_TRANSPORT_OPTIONS): a message counts as sent once
RabbitMQ has taken responsibility for it. py-amqp waits for each confirm before the next publish,
about 2 ms on this machine, which bounds one publisher to a few hundred messages a second (beat
with 100,000 schedules fell behind on exactly that: bench_beat). `Confirms` puts a channel in
confirm mode, publishes without waiting, and then waits once for the confirms of the whole batch,
which RabbitMQ sends together: the same guarantee, one wait a batch.
"""
import time
from collections.abc import Callable, Hashable
from itertools import takewhile

from amqp.exceptions import AMQPError

NOT_CONFIRMED = "the broker did not confirm it"


class Confirms:
    """Confirms of the messages a kombu producer (on a connection opened without `confirm_publish`)
    publishes through `publish`; `wait` returns the keys of those not confirmed, with why.

        confirms = Confirms(producer)
        for job in jobs:
            confirms.publish(job.id, task.apply_async, ..., producer=producer)
        for key, error in confirms.wait().items(): ...   # not sent
    """

    def __init__(self, producer, timeout: float = 10.0):
        self.producer = producer
        self.timeout = timeout  # seconds `wait` waits for the broker at most
        self.channel = None  # the channel in confirm mode
        self.tag = 0  # the delivery tag of the last message published on it
        self.pending: dict[int, Hashable] = {}  # delivery tag -> key, in publishing order
        self.failed: dict[Hashable, str] = {}

    def publish(self, key: Hashable, send: Callable[..., object], *args, **kwargs) -> None:
        """Call `send(*args, **kwargs)`, which publishes one message through the producer, and track
        its confirm; an error is the caller's to handle (nothing is tracked)."""
        channel = self._confirming()
        send(*args, **kwargs)
        if self.producer.channel is not channel:
            # kombu revived the producer on a new connection during the send, and published the
            # message there: the confirms of the old channel's messages, and of this one, are lost.
            self._fail_pending("the connection to the broker was lost")
            self.failed[key] = "the connection to the broker was lost"
            return
        self.tag += 1
        self.pending[self.tag] = key

    def wait(self) -> dict[Hashable, str]:
        """Wait for the confirms of every message published; the keys of those not confirmed (nacked,
        or the connection lost, or no answer within the timeout) with the reason. Ready for more."""
        deadline = time.monotonic() + self.timeout
        try:
            while self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no confirm within {self.timeout:g} s")
                self.channel.connection.drain_events(timeout=remaining)
        except (OSError, AMQPError) as exc:  # TimeoutError (socket.timeout) too
            self._fail_pending(f"{NOT_CONFIRMED}: {exc or type(exc).__name__}")
            self.channel = None  # take a new channel for what comes next
        failed, self.failed = self.failed, {}
        return failed

    def _confirming(self):
        channel = self.producer.channel
        if channel is not self.channel:
            self._fail_pending("the connection to the broker was lost")
            # On the producer's channel; on a new one (as kombu's retries of a publish do) if that one
            # died with its connection: a few tries a second apart, then the error is the caller's.
            self.producer.connection.ensure(self.producer, lambda: self.producer.channel.confirm_select(),
                                            max_retries=3)()
            channel = self.producer.channel
            channel.events["basic_ack"].add(self._acked)
            channel.events["basic_nack"].add(self._nacked)
            self.channel, self.tag = channel, 0
        return channel

    def _settled(self, delivery_tag: int, multiple: bool) -> list[Hashable]:
        if not multiple:
            key = self.pending.pop(delivery_tag, None)
            return [] if key is None else [key]
        settled = list(takewhile(lambda tag: tag <= delivery_tag, self.pending))  # in tag order
        return [self.pending.pop(tag) for tag in settled]

    def _acked(self, delivery_tag: int, multiple: bool) -> None:
        self._settled(delivery_tag, multiple)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        for key in self._settled(delivery_tag, multiple):
            self.failed[key] = f"{NOT_CONFIRMED} (nack)"

    def _fail_pending(self, reason: str) -> None:
        for key in self.pending.values():
            self.failed[key] = reason
        self.pending.clear()
