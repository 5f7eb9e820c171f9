"""The no-op job for Dramatiq: an actor, as its documentation declares one."""
import dramatiq


@dramatiq.actor(queue_name="bench_dramatiq", store_results=True)  # a queue of its own: Celery peers declare bench_peers
def add(x: int, y: int) -> int:
    return x + y
