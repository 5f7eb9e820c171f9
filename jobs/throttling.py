"""How often one user (or, signed out, one address) may start jobs: JOBS_LAUNCH_RATE.
Counted in the Django cache (Redis) by django-ninja's throttle, shared by every web process.
The address is the connection's, or X-Forwarded-For's only behind a configured proxy
(NINJA_NUM_PROXIES, from DJANGO_BEHIND_PROXY and DJANGO_PROXY_COUNT)."""
import logging
import math

import redis
from django.conf import settings
from django.http import HttpRequest
from ninja.conf import settings as ninja_settings
from ninja.throttling import UserRateThrottle

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


class JobLaunchThrottle(UserRateThrottle):
    """A throttle for API routes (`throttle=[JobLaunchThrottle()]`): it counts the attempt before
    the body is read, so an oversized or invalid request still counts. The rate is read from the
    settings at each request.

    Without Redis the limit cannot be counted: launches are let through (fail open) with a warning
    in the log, since Redis is not on the job path and a launch must not fail for it.
    """

    scope = "job_launch"

    def get_ident(self, request: HttpRequest) -> str:
        return client_address(request)

    def __init__(self):
        super().__init__(settings.JOBS_LAUNCH_RATE)

    def allow_request(self, request: HttpRequest) -> bool:
        self.rate = settings.JOBS_LAUNCH_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request)
        except redis.exceptions.RedisError as exc:
            logger.warning("JOBS_LAUNCH_RATE not applied: the cache (Redis) is unreachable (%s).", exc)
            return True


    def allow_jobs(self, request: HttpRequest, jobs: int) -> bool:
        """Count `jobs` launches at once (the steps of a workflow past the request itself, which
        allow_request counted): all of them, or none if they do not fit in the budget now."""
        if jobs <= 0:
            return True
        self.rate = settings.JOBS_LAUNCH_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            self.key = self.get_cache_key(request)
            self.history, self.now = self.cache.get(self.key, []), self.timer()
            while self.history and self.history[-1] <= self.now - self.duration:
                self.history.pop()
            if len(self.history) + jobs > self.num_requests:
                return False
            self.history[:0] = [self.now] * jobs
            self.cache.set(self.key, self.history, self.duration)
        except redis.exceptions.RedisError as exc:
            logger.warning("JOBS_LAUNCH_RATE not applied: the cache (Redis) is unreachable (%s).", exc)
        return True


def workflow_admit(request: HttpRequest):
    """For a workflow launched by `request`: a check services.workflow_launch calls with the number
    of steps before it writes anything, counting each step past the first against the launcher's
    JOBS_LAUNCH_RATE (LaunchLimitReached when they do not fit)."""
    def admit(steps: int) -> None:
        throttle = JobLaunchThrottle()
        if throttle.allow_jobs(request, steps - 1):
            return
        rate = settings.JOBS_LAUNCH_RATE.replace("/", " per ")
        if steps > throttle.num_requests:
            raise LaunchLimitReached(f"This workflow has {steps:,} steps, more than JOBS_LAUNCH_RATE ({rate}) lets one "
                                     "person launch at once: launch it in smaller parts, or ask an administrator.")
        wait = math.ceil(throttle.duration)
        raise LaunchLimitReached(f"This workflow has {steps:,} steps, more than are left of JOBS_LAUNCH_RATE ({rate}) "
                                 f"now: each step counts as a launch. Try again in {wait} s.", wait=wait)
    return admit


def launch_wait(request: HttpRequest) -> int | None:
    """For pages: count this launch; None if allowed, else how many seconds to wait."""
    throttle = JobLaunchThrottle()
    if throttle.allow_request(request):
        return None
    return math.ceil(throttle.wait() or 1)


def too_many(wait: int) -> str:
    return (f"Too many jobs started: the limit is {settings.JOBS_LAUNCH_RATE.replace('/', ' per ')} "
            f"(JOBS_LAUNCH_RATE). Try again in {wait} s.")
