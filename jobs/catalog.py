"""The catalog of launchable jobs: Celery tasks whose type hints are their argument schema.

A job declares its arguments once, as annotated parameters. That declaration becomes a strict
pydantic model used by the API before anything is enqueued and by the worker before the job
runs, so a job never starts with arguments it did not declare.
"""
import hashlib
import inspect
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, get_type_hints

from celery import current_app, shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import Ignore
from django.db import InterfaceError, OperationalError
from django.dispatch import Signal
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from uuid6 import uuid7

from .exceptions import InvalidArguments, JobForbidden, UnknownJob

PROGRESS = "PROGRESS"  # the custom state of a running job that reports how far it is
RUNNING_ELSEWHERE_DELAY = 5  # seconds before a job delivered while it may be running elsewhere is tried again
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
logger = logging.getLogger(__name__)
# Sent on the worker when a job is delivered that the result backend found settled (see JobTask.__call__),
# with `task` (its request says which delivery) and `settled`, the state it found; the job is then not run.
# The catalog builds on nothing: the capabilities above it receive this (jobs/records/receivers.py: send
# it again later; jobs/workflows/receivers.py: pass a step's success on).
settled_job_delivered = Signal()
# Sent by JobTask.apply_async for a job with flow control (job(unique=..., limit=...)), with `task`, `task_id`,
# `args`, `kwargs` and `options`. The records' receiver (jobs/records/receivers.py) claims a unique job's key
# and records it, and has a limited job wait for its limit (jobs/limits) instead of publishing it; it answers
# with the id of the job that stands for this send: its own, or the one holding the key. None: nothing
# done, publish it as usual.
controlled_job_sending = Signal()
NUL = re.compile(r"(?<!\\)(\\\\)*\\u0000")  # a NUL character as JSON writes it (not an escaped backslash and u0000)


def new_task_id() -> str:
    """A job's id: a UUID whose first 48 bits are the time (RFC 9562 version 7), not Celery's
    random version 4.

    Ids that grow with time are written at the right edge of the results table's unique task_id
    index, as the primary key is; random ones land on any of its pages, which with millions of
    rows are out of memory and each rewritten in full to the WAL after a checkpoint
    (bench_throughput --rows).
    """
    return str(uuid7())


def picked(kind: str, on: tuple[str, ...] | Callable[..., Any], name: str, arguments: dict[str, Any]) -> str | dict:
    """What a `Unique` or `Limit` (`kind`) of job `name` takes from a launch's arguments for its key: the
    text `on` returns, when it is a function; else the arguments it names, by name (TypeError naming
    the ones the job does not have)."""
    if callable(on):
        return str(on(**arguments))
    missing = [field for field in on if field not in arguments]
    if missing:
        raise TypeError(f"Job {name}: {kind}(on=...) names {missing}, which are not its arguments.")
    return {field: arguments[field] for field in on}


@dataclass(frozen=True)
class Unique:
    """At most one job of its kind per key: `@job(..., unique=Unique(on=("owner_id",), until="finished"))`.

    `on` makes the key from the job's arguments: their names (all of them when empty), or a function
    taking the arguments by name and returning the key's text. `until` is how long a job holds its
    key: "started" (while it waits to run), "finished" (while it waits or runs; the default), or a
    timedelta (that long after it was launched, whatever becomes of it). A launch while the key is
    held launches nothing and answers with the job holding it. See jobs/records/services.py
    (unique_key_claim) for the bound on a key whose holder was lost.
    """

    on: tuple[str, ...] | Callable[..., str] = ()
    until: str | timedelta = "finished"

    def __post_init__(self):
        if not (self.until in ("started", "finished") or isinstance(self.until, timedelta) and self.until > timedelta(0)):
            raise ValueError(f"Unique(until=...) is 'started', 'finished' or a positive timedelta, not {self.until!r}.")
        if isinstance(self.on, str):
            raise TypeError(f"Unique(on=...) takes a tuple of argument names: ({self.on!r},).")

    def key(self, name: str, arguments: dict[str, Any]) -> str:
        """The key of a launch of job `name` with these (validated, JSON) arguments: a SHA-256 of the job's
        name and the key's parts, so that any arguments make a key of one size."""
        parts = picked("Unique", self.on or tuple(sorted(arguments)), name, arguments)
        if isinstance(parts, dict):
            parts = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(f"{name}\n{parts}".encode()).hexdigest()


RATE = re.compile(r"^(?P<count>[1-9][0-9]*)/(?P<unit>[smh])$")
PERIODS = {"s": 1, "m": 60, "h": 3600}


def rate_interval(rate: str) -> float:
    """The seconds between two jobs at `rate` ("10/s", "100/m", "1000/h"); ValueError saying what to write."""
    match = RATE.match(rate)
    if not match:
        raise ValueError(f"A rate is a count per second, minute or hour, such as '10/s', '100/m' or '1000/h'; "
                         f"not {rate!r}.")
    return PERIODS[match["unit"]] / int(match["count"])


@dataclass(frozen=True)
class Limit:
    """How fast and how many at once a job runs, across every worker: `@job(..., limit=Limit(rate="10/s"))`.

    `rate` is at most that many jobs started per second, minute or hour ("10/s", "100/m"); `concurrency`
    at most that many running at once. `on` splits the limit by key: argument names (their values are
    the key), or a function taking the arguments by name and returning the key's text, such as a URL's
    host; with neither, one limit holds for the whole job. A job over its limit is not published: it
    waits, in order within its key, in the database (jobs/limits), holding no worker process, and is
    sent when its limit lets it. Operators change `rate` and `concurrency` at run time in the admin.
    """

    rate: str | None = None
    concurrency: int | None = None
    on: tuple[str, ...] | Callable[..., Any] = ()

    def __post_init__(self):
        if self.rate is None and self.concurrency is None:
            raise ValueError("Limit() needs a rate ('10/s') or a concurrency (4), or both.")
        if self.rate is not None:
            rate_interval(self.rate)
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise ValueError(f"Limit(concurrency=...) is a whole number of jobs, at least 1; not {self.concurrency!r}.")
        if isinstance(self.on, str):
            raise TypeError(f"Limit(on=...) takes a tuple of argument names: ({self.on!r},).")

    def key(self, name: str, arguments: dict[str, Any]) -> str:
        """The key of a job `name` with these (JSON) arguments, as text people read (a host, an owner's
        id): '' for a limit on the whole job; longer than 200 characters, a SHA-256 of it."""
        key = picked("Limit", self.on, name, arguments)
        if isinstance(key, dict):
            key = " ".join(f"{field}={json.dumps(value)}" for field, value in key.items())
        return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()

    @property
    def per(self) -> str:
        """What the limit is split by, for people: 'host', 'url', '' (the whole job)."""
        return getattr(self.on, "__name__", "key").removeprefix("by_") if callable(self.on) else ", ".join(self.on)


class JobTask(DjangoTask):
    """Base class of launchable jobs: validates arguments against the type hints on every run."""

    do_not_call_in_templates = True  # a task is callable; templates read its attributes
    restricted = False  # see job()
    unique: Unique | None = None  # see job() and Unique
    limit: Limit | None = None  # see job() and Limit

    @property
    def marked_at_start(self) -> bool:
        """Whether a run is recorded STARTED as it starts, not once it has lasted
        JOBS_STARTED_AFTER_SECONDS (jobs/results/started.py): a limit counts its STARTED runs, and a
        unique job held until it starts lets its key go then."""
        return self.limit is not None or (self.unique is not None and self.unique.until == "started")

    @cached_property
    def arguments_model(self) -> type[BaseModel]:
        """The strict pydantic model built from the task function's signature."""
        signature = inspect.signature(self.run)
        hints = get_type_hints(self.run, include_extras=True)
        fields = {}
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"Job {self.name} must name its arguments: *args and **kwargs have no schema.")
            if parameter.name not in hints:
                raise TypeError(f"Job {self.name} must annotate its argument {parameter.name!r}.")
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (hints[parameter.name], default)
        return create_model(
            f"{self.name}.arguments",
            __config__=ConfigDict(extra="forbid", strict=True),
            **fields,
        )

    @property
    def usage(self) -> str:
        """How to call the job, e.g. 'jobs.build_report(days: int = 7)'."""
        parameters = []
        for name, field in self.arguments_model.model_fields.items():
            parameter = f"{name}: {getattr(field.annotation, '__name__', field.annotation)}"
            parameters.append(parameter if field.is_required() else f"{parameter} = {field.default!r}")
        return f"{self.name}({', '.join(parameters)})"

    @property
    def description(self) -> str:
        """The first line of the job's docstring."""
        return (self.__doc__ or "").strip().split("\n")[0]

    def arguments_model_without(self, name: str) -> type[BaseModel]:
        """The arguments model without parameter `name` (a workflow step's input, not known yet)."""
        models = self.__dict__.setdefault("_models_without", {})
        if name not in models:
            fields = {key: (field.annotation, field) for key, field in self.arguments_model.model_fields.items()
                      if key != name}
            models[name] = create_model(f"{self.name}.arguments", __config__=ConfigDict(extra="forbid", strict=True),
                                        **fields)
        return models[name]

    def validate_arguments(self, args: list | tuple = (), kwargs: dict | None = None, unchecked: str = "") -> BaseModel:
        """Bind positional and keyword arguments to the declared parameters and validate them;
        all but `unchecked`, a parameter whose value comes later.

        Validation follows JSON's rules in strict mode: "4" is not an int, but an ISO string is
        a datetime, exactly as the values arrive from the API and from the broker.
        """
        kwargs = kwargs or {}
        model = self.arguments_model_without(unchecked) if unchecked else self.arguments_model
        names = list(model.model_fields)
        if len(args) > len(names):
            raise InvalidArguments(self.name, [{
                "field": "",
                "message": f"takes at most {len(names)} positional arguments ({', '.join(names)}), got {len(args)}",
            }])
        data = dict(zip(names, args, strict=False))  # fewer args than names: the rest by name
        twice = sorted(data.keys() & kwargs.keys())
        if twice:
            raise InvalidArguments(self.name, [
                {"field": name, "message": "given both by position and by name"} for name in twice
            ])
        data.update(kwargs)
        try:
            payload = json.dumps(data)
        except TypeError as exc:  # a value JSON cannot carry
            raise InvalidArguments(self.name, [{"field": "", "message": str(exc)}]) from exc
        if NUL.search(payload):  # PostgreSQL's JSON columns, where arguments are recorded, refuse it
            raise InvalidArguments(self.name, [
                {"field": name, "message": "text must not contain NUL characters (\\u0000)"}
                for name, value in data.items() if NUL.search(json.dumps(value))
            ])
        try:
            return model.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            raise InvalidArguments(self.name, [
                {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
                for error in exc.errors()
            ]) from exc

    def json_arguments(self, args: list | tuple = (), kwargs: dict | None = None, unchecked: str = "") -> dict[str, Any]:
        """Validated arguments as the JSON keyword arguments a message carries."""
        return self.validate_arguments(args, kwargs, unchecked).model_dump(mode="json")

    def apply_async(self, args=None, kwargs=None, task_id=None, *more, **options):
        """Celery's apply_async, the job's id time-ordered (new_task_id) unless one is given. A unique
        job's send claims its key first, and a limited job waits for its limit (controlled_job_sending):
        while another holds the key, nothing is sent and the result is that job's."""
        task_id = task_id or new_task_id()
        if (self.unique is not None or self.limit is not None) and not more and not self.app.conf.task_always_eager:
            for _receiver, standing in controlled_job_sending.send(type(self), task=self, task_id=task_id,
                                                                    args=args or (), kwargs=kwargs or {},
                                                                    options=options):
                if standing is not None:
                    return self.AsyncResult(standing)
        return super().apply_async(args, kwargs, task_id, *more, **options)

    def __call__(self, *args, **kwargs):
        arguments = self.validate_arguments(args, kwargs)
        settled = getattr(self.request, "job_settled", None)
        if settled:
            # Delivered again while a run of it may still be going on elsewhere (STARTED, PROGRESS), or
            # cancelled while queued and this worker missed the revoke broadcast, or run already
            # (REVOKED, SUCCESS): the result backend found the record so when it went to mark it STARTED
            # (jobs/results/backend.py). Not run; the receivers decide what follows.
            settled_job_delivered.send(sender=type(self), task=self, settled=settled)
            raise Ignore()
        # Fields, not model_dump(): nested models and datetimes reach the function as such.
        return super().__call__(**{name: getattr(arguments, name) for name in arguments.model_fields})

    def report_progress(self, current: int, total: int, message: str = "") -> None:
        """Record how far the running job is; pages and the API show it as a progress bar."""
        self.update_state(state=PROGRESS, meta={"current": current, "total": total, "message": message})


def job(name: str, restricted: bool = False, unique: Unique | bool | None = None, limit: Limit | None = None,
        **task_options):
    """Declare a launchable job: a shared Celery task named `name` with validated arguments.

    `restricted` jobs are launched by the system (sign-up, uploads, beat) and by people with the
    "Can launch restricted jobs" permission (jobs.launch_restricted_job); the API and the pages
    refuse them to everyone else. Every job is retried, with backoff, when the database drops its
    connection (a restart, a failover, a deadlock), on top of the errors it names in
    `autoretry_for`: jobs are idempotent, and the retry runs on a fresh connection.

    `unique` (a Unique, or True for one job per set of arguments until it finishes) makes a launch
    while an identical job is queued or running answer with that job instead of adding another,
    from the API, the pages, code and beat.

    `limit` (a Limit) bounds how fast and how many at once the job runs, across every worker, per key
    of its arguments if it says so; a job over its limit waits in the database, not on a worker.
    """
    unique = Unique() if unique is True else unique or None
    if limit is not None and limit.concurrency is not None and task_options.get("ignore_result"):
        raise ValueError(f"Job {name}: a concurrency limit counts running jobs by their stored state, which "
                         "ignore_result=True does not keep; limit its rate only, or store its results.")
    task_options["autoretry_for"] = (*task_options.get("autoretry_for", ()), *TRANSIENT_DATABASE_ERRORS)
    task_options.setdefault("retry_backoff", True)
    task_options.setdefault("retry_jitter", True)
    task_options.setdefault("max_retries", 5)
    task_options.setdefault("default_retry_delay", 5)  # after a pool process died mid-job
    task_options.setdefault("base", JobTask)
    return shared_task(name=name, restricted=restricted, unique=unique, limit=limit, **task_options)


def flow_control(*, unique: Unique | bool | None = None, limit: Limit | None = None):
    """Flow control for a function declared with Django's @task, which takes no such options: put it under
    @task, and the engine's backend (jobs/django_tasks) makes its job unique or limited as job() does."""

    def mark(func):
        func.jobs_flow_control = {"unique": unique, "limit": limit}
        return func

    return mark


def may_launch(user, task: JobTask) -> bool:
    """Whether `user` may launch `task` from the web: restricted jobs need the permission."""
    return not task.restricted or user.has_perm("jobs.launch_restricted_job")


def catalog(user=None) -> dict[str, JobTask]:
    """All launchable jobs by name; with `user`, those that user may launch."""
    return {
        name: task for name, task in sorted(current_app.tasks.items())
        if isinstance(task, JobTask) and (user is None or may_launch(user, task))
    }


def find_job(name: str, user=None) -> JobTask:
    """The launchable job called `name`, or UnknownJob; with `user`, JobForbidden if not theirs to launch."""
    task = current_app.tasks.get(name)
    if not isinstance(task, JobTask):
        raise UnknownJob(name, list(catalog(user)))
    if user is not None and not may_launch(user, task):
        raise JobForbidden(name, list(catalog(user)))
    return task
