"""How often one user (or, signed out, one address) may start jobs: JOBS_LAUNCH_RATE.
Counted in the Django cache's Redis, shared by every web process, as a sliding window: no more than
the rate's number of launches in any window of its length.
The address is the connection's, or X-Forwarded-For's only behind a configured proxy
(NINJA_NUM_PROXIES, from DJANGO_BEHIND_PROXY and DJANGO_PROXY_COUNT)."""
import logging
import math
import threading
import uuid

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from ninja.conf import settings as ninja_settings
from ninja.throttling import BaseThrottle, SimpleRateThrottle

from .cache import cache_run
from .exceptions import LaunchLimitReached

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    """The client's address: the connection's, or behind NINJA_NUM_PROXIES proxies the entry of
    X-Forwarded-For the outermost of them added (entries before it are the client's to make up).
    The launch budget, the sign-in lockout and /metrics all judge this one address."""
    proxies = ninja_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not proxies or not forwarded:
        return request.META.get("REMOTE_ADDR", "")
    entries = forwarded.split(",")
    return entries[-min(proxies, len(entries))].strip()


# A client's launches in the last window, as a sorted set of their times in Redis, counted and added to
# in one script: launches at the same moment (threads, web processes) are each counted. django-ninja's
# throttle read the list, then wrote it back, and lost the launches that overlapped: 60 launches at once
# against 20/m let 24 and 25 through. The times are Redis's, one clock for every web host.
ADMIT_SCRIPT = """
local key, window, limit, cost = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
if used + cost > limit then
    if cost > limit then return tostring(window) end
    local freeing = redis.call('ZRANGE', key, used + cost - limit - 1, used + cost - limit - 1, 'WITHSCORES')
    return tostring(tonumber(freeing[2]) + window - now)
end
for n = 1, cost do redis.call('ZADD', key, now, ARGV[4] .. n) end
redis.call('EXPIRE', key, math.ceil(window))
return false
"""


def launch_rate() -> tuple[int, int]:
    """JOBS_LAUNCH_RATE as (launches, seconds), in django-ninja's throttle syntax (60/m, 1000/s, 5/10m)."""
    try:
        parsed = SimpleRateThrottle(settings.JOBS_LAUNCH_RATE)
    except ValueError:
        raise ImproperlyConfigured(f"JOBS_LAUNCH_RATE is {settings.JOBS_LAUNCH_RATE!r}: give launches per period, "
                                   "as 60/m, 1000/s, 1000/h or 5/10m.") from None
    return parsed.num_requests, parsed.duration


def launches_admit(request: HttpRequest, jobs: int) -> float | None:
    """Count `jobs` launches of the request's user (signed out: its address) against JOBS_LAUNCH_RATE,
    all or none: None if they are counted, else the seconds until they would fit.

    Without Redis the limit cannot be counted: launches are let through (fail open) with a warning
    in the log, since Redis is not on the job path and a launch must not fail for it."""
    user = getattr(request, "user", None)
    ident = f"user:{user.pk}" if user is not None and user.is_authenticated else f"address:{client_address(request)}"
    limit, seconds = launch_rate()
    try:
        wait = cache_run(ADMIT_SCRIPT, keys=[cache.make_key(f"jobs:launches:{ident}")],
                         args=[seconds, limit, jobs, f"{uuid.uuid4().hex}:"])
    except redis.exceptions.RedisError as exc:
        logger.warning("JOBS_LAUNCH_RATE not applied: the cache (Redis) is unreachable (%s).", exc)
        return None
    return None if wait is None else float(wait)


class JobLaunchThrottle(BaseThrottle):
    """A throttle for API routes (`throttle=[JobLaunchThrottle()]`): it counts the attempt before
    the body is read, so an oversized or invalid request still counts. One instance serves a route's
    every request, from several threads: a request's wait is kept per thread."""

    def __init__(self):
        launch_rate()  # a malformed JOBS_LAUNCH_RATE stops the web process's start
        self.refused = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        self.refused.wait = launches_admit(request, 1)
        return self.refused.wait is None

    def wait(self) -> float | None:
        return self.refused.wait


def workflow_admit(request: HttpRequest):
    """For a workflow launched by `request`: a check services.workflow_launch calls with the number
    of steps before it writes anything, counting each step past the first (the request itself was
    counted by JobLaunchThrottle) against the launcher's JOBS_LAUNCH_RATE (LaunchLimitReached when
    they do not fit)."""
    def admit(steps: int) -> None:
        limit, seconds = launch_rate()
        rate = settings.JOBS_LAUNCH_RATE.replace("/", " per ")
        if steps > limit:
            raise LaunchLimitReached(f"This workflow has {steps:,} steps, more than JOBS_LAUNCH_RATE ({rate}) lets one "
                                     "person launch at once: launch it in smaller parts, or ask an administrator.")
        if steps > 1 and (wait := launches_admit(request, steps - 1)) is not None:
            wait = math.ceil(wait)
            raise LaunchLimitReached(f"This workflow has {steps:,} steps, more than are left of JOBS_LAUNCH_RATE "
                                     f"({rate}) now: each step counts as a launch. Try again in {wait} s.", wait=wait)
    return admit


def launch_wait(request: HttpRequest) -> int | None:
    """For pages: count this launch; None if allowed, else how many seconds to wait."""
    wait = launches_admit(request, 1)
    return None if wait is None else math.ceil(wait)


def too_many(wait: int) -> str:
    return (f"Too many jobs started: the limit is {settings.JOBS_LAUNCH_RATE.replace('/', ' per ')} "
            f"(JOBS_LAUNCH_RATE). Try again in {wait} s.")
