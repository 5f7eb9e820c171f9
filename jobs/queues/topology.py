"""The job queues as RabbitMQ declares them: classic queues on one node, or quorum queues on a
cluster (BROKER_QUEUE_TYPE). Settings build CELERY_TASK_QUEUES with job_queues()."""
from kombu import Exchange, Queue

# A quorum queue dead-letters a message delivered this many times without an acknowledgement:
# a job that kills its worker every time ends in the dead-letter queue, bounded by the broker.
DELIVERY_LIMIT = 6


def job_queues(names: list[str], *, queue_type: str, dead_letter_exchange: str) -> tuple[Queue, ...]:
    """Durable job queues that dead-letter to `dead_letter_exchange`.

    classic: RabbitMQ's classic queues, with priorities 0-9 (CELERY_TASK_QUEUE_MAX_PRIORITY).
    quorum: replicated across the cluster's nodes (Raft): no confirmed message is lost while a
    majority of nodes lives. RabbitMQ 3.x quorum queues have no priorities. Dead-lettering is
    at-least-once (which needs reject-publish on overflow), and each queue is bound through a
    topic exchange of its name, as Celery's native delayed delivery (countdowns, ETAs, retry
    delays without global QoS) requires.
    """
    if queue_type == "classic":
        arguments = {"x-dead-letter-exchange": dead_letter_exchange}
        return tuple(Queue(name, durable=True, queue_arguments=arguments) for name in names)
    if queue_type != "quorum":
        raise ValueError(f"BROKER_QUEUE_TYPE is {queue_type!r}: use classic (one node) or quorum (a cluster).")
    arguments = {
        "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": dead_letter_exchange, "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    return tuple(
        Queue(name, Exchange(name, type="topic", durable=True), routing_key=name, durable=True,
              queue_arguments=arguments)
        for name in names
    )


def dead_letter_queue(*, name: str, exchange: str, queue_type: str, retention: dict) -> Queue:
    """The queue that keeps dead letters (replicated too, on a cluster)."""
    arguments = {**retention, **({"x-queue-type": "quorum"} if queue_type == "quorum" else {})}
    return Queue(name, Exchange(exchange, type="fanout", durable=True), durable=True, queue_arguments=arguments)
