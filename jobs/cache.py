"""The Django cache's Redis, reached directly for counts that many web processes change at once:
each change one atomic step (a Lua script), which the cache's get-then-set cannot be."""
import time
from functools import cache as memoized

import redis
from django.conf import settings

# After Redis did not answer, it is not asked again from this process for this long: each launch
# would otherwise wait its timeouts (the cache's OPTIONS) again, while Redis is frozen.
UNANSWERED_SECONDS = 5
_unanswered_at = -float(UNANSWERED_SECONDS)


@memoized
def _client(location: str) -> redis.Redis:
    # One connection pool a process (redis-py makes a new one in a forked child), with the cache's timeouts.
    return redis.Redis.from_url(location, **settings.CACHES["default"].get("OPTIONS", {}))


@memoized
def _script(source: str, location: str) -> redis.commands.core.Script:
    return _client(location).register_script(source)


def cache_run(source: str, keys: list[str], args: list = ()):
    """Run Lua `source` on the cache's Redis (CACHES, REDIS_URL) and return its answer. A RedisError
    if Redis is unreachable or did not answer within its timeout, at once for UNANSWERED_SECONDS after."""
    global _unanswered_at
    if time.monotonic() < _unanswered_at + UNANSWERED_SECONDS:
        raise redis.exceptions.ConnectionError(f"no answer from it in the last {UNANSWERED_SECONDS} s")
    try:
        return _script(source, settings.CACHES["default"]["LOCATION"])(keys=keys, args=args)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        _unanswered_at = time.monotonic()
        raise


def cache_unanswered_forget() -> None:
    """Ask Redis again at the next call, as if it had always answered (tests, once a fault is over)."""
    global _unanswered_at
    _unanswered_at = -float(UNANSWERED_SECONDS)
