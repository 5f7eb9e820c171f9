"""JOBS_MAX_UNFINISHED: how many jobs one person may have queued or running, checked as they launch.

Counting a person's unfinished jobs reads their records (20 ms at 5,000, more with every job they
launched, until statistics catch up). So a count also leaves in Redis how many more jobs the person
may launch, their headroom, and a launch takes its jobs from it. Jobs only finish between counts, so
the headroom errs on the safe side.

Two launches must not count without each other. A count, and a launch in a transaction of its
caller's, take a lock per person (a PostgreSQL advisory lock, held until the transaction ends), so
that the next count sees their records. A launch in a transaction of its own takes its jobs from the
headroom without the lock and is counted as in flight until that transaction has ended: a count
adds the jobs in flight to the jobs it reads, and while it counts there is no headroom to take. The
lock, held across a launch's round trips, let one person's launches through one at a time
(bench_api: 50 clients holding one token; docs/explanation/benchmarks.md).
"""
import logging
from contextlib import contextmanager

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection

from ..cache import cache_run
from ..exceptions import LaunchLimitReached
from . import selectors
from .models import JobRecord

logger = logging.getLogger(__name__)

UNFINISHED_LOCK = 0x6A6F6273  # "jobs": the first key of the per-person advisory lock

# How long a person's known headroom is kept, from their last launch, before it is counted again.
HEADROOM_SECONDS = 600

# A person's hash: headroom (jobs they may still launch, if known) and in_flight (jobs taken from it
# by launches whose transactions have not ended). KEYS[1]; ARGV: jobs, in flight (1 or 0), seconds kept.
TAKE = """
local headroom = tonumber(redis.call('HGET', KEYS[1], 'headroom'))
if headroom == nil or headroom < tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'headroom', -ARGV[1])
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'in_flight', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# A count begins: no headroom to take until it ends; the jobs in flight now.
COUNT = """
redis.call('HDEL', KEYS[1], 'headroom')
return math.max(tonumber(redis.call('HGET', KEYS[1], 'in_flight')) or 0, 0)
"""
# A count ends (ARGV: the headroom, seconds kept).
COUNTED = """
redis.call('HSET', KEYS[1], 'headroom', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""
# A launch's transaction ended (ARGV: jobs). Not on a hash gone (Redis lost it): a count reads none in flight.
LANDED = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'in_flight', -ARGV[1]) end
"""


def _key(user: AbstractBaseUser, limit: int) -> str:
    return cache.make_key(f"jobs:unfinished:{user.pk}:{limit}")


def _warn(exc: redis.exceptions.RedisError) -> None:
    logger.warning("Counting unfinished jobs on each launch: the cache (Redis) is unreachable (%s).", exc)


def _capped(user: AbstractBaseUser | None) -> int:
    """The cap on `user`'s unfinished jobs; 0 for none (no limit set, or not a person)."""
    return settings.JOBS_MAX_UNFINISHED if user is not None and user.is_authenticated else 0


@contextmanager
def unfinished_taken(user: AbstractBaseUser | None, adding: int):
    """Around a launch's own transaction (not inside one): take `adding` jobs from `user`'s headroom
    without the lock, counted in flight until the block ends. Yields whether it did; if not (none
    known, too little, Redis unreachable), the launch calls unfinished_limit_check in its transaction."""
    limit = _capped(user)
    taken = False
    if limit and not connection.in_atomic_block:
        try:
            taken = bool(cache_run(TAKE, keys=[_key(user, limit)], args=[adding, 1, HEADROOM_SECONDS]))
        except redis.exceptions.RedisError as exc:
            _warn(exc)
    try:
        yield taken
    finally:
        if taken:
            try:
                cache_run(LANDED, keys=[_key(user, limit)], args=[adding])
            except redis.exceptions.RedisError as exc:  # in_flight errs on the safe side until the hash expires
                _warn(exc)


def unfinished_limit_check(user: AbstractBaseUser | None, adding: int) -> None:
    """LaunchLimitReached if `user` would have more than JOBS_MAX_UNFINISHED jobs queued or running
    with `adding` more. Call inside the transaction that records them: it holds the person's lock
    until that transaction ends. Takes the jobs from the headroom, or counts again."""
    limit = _capped(user)
    if not limit:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [UNFINISHED_LOCK, user.pk])
    key, in_flight = _key(user, limit), 0
    try:
        if cache_run(TAKE, keys=[key], args=[adding, 0, HEADROOM_SECONDS]):
            return
        in_flight = cache_run(COUNT, keys=[key])
    except redis.exceptions.RedisError as exc:
        _warn(exc)
        key = None
    recorded = JobRecord.objects.filter(launched_by=user, result__status__in=selectors.UNFINISHED)[:limit].count()
    unfinished = recorded + in_flight
    if unfinished + adding > limit:
        raise LaunchLimitReached(
            f"You have {unfinished:,} jobs queued or running{'' if recorded < limit else ' or more'}; with "
            f"{adding:,} more that is over JOBS_MAX_UNFINISHED ({limit:,}) for one person. Wait for some to finish, "
            "or cancel some.")
    if key is not None:
        try:
            cache_run(COUNTED, keys=[key], args=[limit - unfinished - adding, HEADROOM_SECONDS])
        except redis.exceptions.RedisError as exc:
            _warn(exc)
