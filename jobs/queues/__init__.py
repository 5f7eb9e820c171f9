"""Operating the queues: how RabbitMQ declares them (topology), the broker's figures (broker), pause,
resume and purge, dead letters, and the workers that consume them (their heartbeat, their pools)."""
from .topology import DELIVERY_LIMIT, dead_letter_queue, job_queues

__all__ = ["DELIVERY_LIMIT", "dead_letter_queue", "job_queues"]
