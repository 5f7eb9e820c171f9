"""How often one user (or, signed out, one address) may start jobs: JOBS_LAUNCH_RATE.
Counted in the Django cache (Redis) by django-ninja's throttle, shared by every web process."""
import math

from django.conf import settings
from django.http import HttpRequest
from ninja.throttling import UserRateThrottle


class JobLaunchThrottle(UserRateThrottle):
    scope = "job_launch"


def launch_wait(request: HttpRequest) -> int | None:
    """Count this launch; None if allowed, else how many seconds to wait before the next one."""
    throttle = JobLaunchThrottle(settings.JOBS_LAUNCH_RATE)
    if throttle.allow_request(request):
        return None
    return math.ceil(throttle.wait() or 1)


def too_many(wait: int) -> str:
    return (f"Too many jobs started: the limit is {settings.JOBS_LAUNCH_RATE.replace('/', ' per ')} "
            f"(JOBS_LAUNCH_RATE). Try again in {wait} s.")
