"""Confirms: a batch published without a wait per message, every message confirmed or named."""
import socket
import uuid

from celery import current_app
from django.test import SimpleTestCase
from kombu import Exchange, Queue

from jobs.publishing import Confirms


class ConfirmsTests(SimpleTestCase):
    """Against the test broker: a queue of its own per test, deleted after."""

    def setUp(self):
        self.connection = current_app.connection_for_write(transport_options={"confirm_publish": False})
        self.addCleanup(self.connection.release)
        self.producer = self.connection.Producer()

    def queue(self, **arguments) -> Queue:
        queue = Queue(f"confirms-{uuid.uuid4()}", Exchange(""), durable=True, queue_arguments=arguments)
        queue(self.connection.default_channel).declare()
        self.addCleanup(lambda: queue(current_app.connection_for_write().default_channel).delete())
        return queue

    def publish(self, confirms: Confirms, queue: Queue, keys) -> None:
        for key in keys:
            confirms.publish(key, self.producer.publish, {"n": key}, routing_key=queue.name, exchange="")

    def depth(self, queue: Queue) -> int:
        return queue(self.connection.default_channel).queue_declare(passive=True).message_count

    def drain(self, queue: Queue) -> list:
        bound, keys = queue(self.connection.default_channel), []
        while (message := bound.get(no_ack=True)) is not None:
            keys.append(message.decode()["n"])
        return keys

    def test_a_batch_is_confirmed_at_once(self):
        queue, confirms = self.queue(), Confirms(self.producer)
        self.publish(confirms, queue, range(200))
        self.assertEqual(confirms.wait(), {})
        self.assertEqual(self.depth(queue), 200)
        self.publish(confirms, queue, range(200, 210))  # the same channel goes on
        self.assertEqual(confirms.wait(), {})
        self.assertEqual(self.depth(queue), 210)

    def test_the_messages_the_broker_refuses_are_named(self):
        """A full queue that rejects publishes (as the project's queues do on overflow) nacks them."""
        queue, confirms = self.queue(**{"x-max-length": 3, "x-overflow": "reject-publish"}), Confirms(self.producer)
        self.publish(confirms, queue, range(8))
        failed = confirms.wait()
        self.assertEqual(sorted(failed), [3, 4, 5, 6, 7])
        self.assertIn("nack", failed[3])
        self.assertEqual(self.depth(queue), 3)

    def test_a_connection_lost_before_the_confirms_names_every_message_waiting(self):
        queue, confirms = self.queue(), Confirms(self.producer)
        self.assertEqual(confirms.wait(), {})  # nothing published, nothing to wait for
        self.publish(confirms, queue, ["a", "b", "c"])
        self.producer.channel.connection.sock.shutdown(socket.SHUT_RDWR)  # the network fails
        failed = confirms.wait()
        self.assertEqual(sorted(failed), ["a", "b", "c"])
        self.assertIn("did not confirm", failed["a"])
        self.publish(confirms, queue, ["d", "e"])  # on a new connection
        self.assertEqual(confirms.wait(), {})
        # What of a, b and c left the socket before the fault may reach the queue at any time (the
        # broker still works through the old connection's frames), so the queue is read, not counted.
        arrived = self.drain(queue)
        self.assertEqual(arrived.count("d"), 1)
        self.assertEqual(arrived.count("e"), 1)
        self.assertLessEqual(set(arrived), {"a", "b", "c", "d", "e"})
