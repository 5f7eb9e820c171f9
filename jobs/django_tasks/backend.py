"""The django.tasks backend: Django's own tasks API (Django 6.0) run by this engine.

    TASKS = {"default": {"BACKEND": "jobs.django_tasks.backend.JobsBackend", "QUEUES": ["default", ...]}}

A task declared with Django's ``@task`` becomes a catalog job under its module path the moment it is
declared (JobsTask), so it is launched, recorded, run, retried, cancelled, scheduled and shown exactly
as an ``@job`` is. ``enqueue`` is ``job_launch``: its arguments are checked from its type hints,
it is recorded PENDING in the caller's transaction and published when that commits. Results are read
from the results table by any process.

Priorities: Django's -100..100 become RabbitMQ's 0..9 on classic queues, 0 (the default) as 5, the
engine's default (AMQP_PRIORITY). Quorum queues (a cluster, BROKER_QUEUE_TYPE=quorum) have no
priorities in RabbitMQ 3.x: a task's priority is accepted and then has no effect there.
"""
import builtins
import functools
import inspect
import json
import traceback
from datetime import datetime
from typing import get_type_hints

from celery import current_task, exceptions, states
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from pydantic import JsonValue

from ..catalog import JobTask, find_job, job
from ..exceptions import UnknownJob
from ..records.selectors import jobs_with_details
from ..records.services import job_enqueue

STATUS = {
    states.PENDING: TaskResultStatus.READY, states.RECEIVED: TaskResultStatus.READY, states.RETRY: TaskResultStatus.READY,
    states.STARTED: TaskResultStatus.RUNNING, "PROGRESS": TaskResultStatus.RUNNING,
    states.SUCCESS: TaskResultStatus.SUCCESSFUL, states.FAILURE: TaskResultStatus.FAILED,
    states.REVOKED: TaskResultStatus.FAILED,
}
ENQUEUED_AT = "django_task_enqueued_at"  # the message header that carries when it was enqueued


def amqp_priority(priority: int) -> int:
    """Django's -100..100 (0 by default) as RabbitMQ's 0..9, 0 as the engine's default of 5."""
    return 5 + round(priority * (4 if priority > 0 else 5) / 100)


class DjangoTaskJob(JobTask):
    """A django.tasks Task as the catalog holds it: its run reports to Django's task signals and
    gives the function its TaskContext when it takes one."""

    django_task: Task | None = None

    def run_django_task(self, kwargs: dict) -> object:
        """Run the function on this worker as Django's backends do: task_started, then the call, then
        task_finished, SUCCESSFUL or FAILED (the error raised again, for Celery's retries)."""
        task, request = self.django_task, self.request
        backend = task.get_backend()
        now = timezone.now()
        result = TaskResult(
            task=task, id=request.id, status=TaskResultStatus.RUNNING,
            enqueued_at=datetime.fromisoformat(enqueued) if (enqueued := getattr(request, ENQUEUED_AT, None)) else None,
            started_at=now, last_attempted_at=now, finished_at=None, args=[], kwargs=kwargs, backend=backend.alias,
            errors=[], worker_ids=[request.hostname or ""] * (request.retries + 1),
        )
        task_started.send(type(backend), task_result=result)
        try:
            value = task.call(*([TaskContext(task_result=result)] if task.takes_context else []), **kwargs)
        except Exception as exc:
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            object.__setattr__(result, "finished_at", timezone.now())
            result.errors.append(TaskError(exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                                           traceback="".join(traceback.format_exception(exc))))
            task_finished.send(type(backend), task_result=result)
            raise
        value = normalize_json(value)
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "finished_at", timezone.now())
        object.__setattr__(result, "_return_value", value)
        task_finished.send(type(backend), task_result=result)
        return value


def catalog_job(task: Task) -> DjangoTaskJob:
    """The catalog job of a django.tasks Task, declared the first time it is asked for: named by the
    task's module path, its arguments those of the function (less `context`), its queue the task's."""
    try:
        found = find_job(task.module_path)
    except UnknownJob:
        found = None
    if isinstance(found, DjangoTaskJob):
        return found
    func = task.func
    signature = inspect.signature(func)
    parameters = list(signature.parameters.values())[1 if task.takes_context else 0:]
    hints = get_type_hints(func, include_extras=True)

    @functools.wraps(func, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    def run(**kwargs):
        return current_task.run_django_task(kwargs)

    run.__signature__ = signature.replace(parameters=parameters)
    # An argument without a type hint (common in third-party apps: Wagtail's tasks have none) takes
    # any JSON value, as Django's contract for task arguments says; a hinted one is checked as @job's are.
    run.__annotations__ = {parameter.name: hints.get(parameter.name, JsonValue) for parameter in parameters}
    # Unique or limited when the function says so (jobs.catalog.flow_control, under @task).
    return job(task.module_path, base=DjangoTaskJob, django_task=task, queue=task.queue_name,
               **getattr(func, "jobs_flow_control", {}))(run)


class JobsTask(Task):
    """Django's Task, entered in the engine's catalog when it is declared (and when `using` makes another)."""

    __slots__ = ()

    def __post_init__(self):
        super().__post_init__()
        catalog_job(self)


class JobsBackend(BaseTaskBackend):
    """The engine as a django.tasks backend: every capability Django defines, backed by the broker,
    the job records and the results table."""

    task_class = JobsTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        """Check the arguments against the function's type hints, record the job PENDING (in the
        caller's transaction, if any) and publish it when that commits; InvalidArguments if they do not fit."""
        self.validate_task(task)
        job_task = catalog_job(task)
        arguments = job_task.json_arguments(args, kwargs)
        enqueued_at = timezone.now()
        options = {"queue": task.queue_name, "priority": amqp_priority(task.priority),
                   "headers": {ENQUEUED_AT: enqueued_at.isoformat()}}
        if task.run_after is not None:
            options["eta"] = task.run_after
        task_id, launched = job_enqueue(task=job_task, arguments=arguments, options=options)
        if not launched:  # unique (flow_control), and an identical job holds the key: that job's result
            return self.get_result(task_id)
        task_result = TaskResult(
            task=task, id=task_id,
            status=TaskResultStatus.READY, enqueued_at=enqueued_at, started_at=None, last_attempted_at=None,
            finished_at=None, args=[], kwargs=arguments, backend=self.alias, errors=[], worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=task_result)
        return task_result

    def get_result(self, result_id: str) -> TaskResult:
        """The task's result as the results table holds it now, from any process."""
        result = jobs_with_details().filter(task_id=result_id).first()
        if result is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            job_task = find_job(result.task_name)
        except UnknownJob:
            raise TaskResultDoesNotExist(result_id) from None
        if isinstance(job_task, DjangoTaskJob):
            task = job_task.django_task
        else:  # an @job, read through the same API: Django's plain Task of its function (not entered again)
            queue = getattr(getattr(result, "record", None), "queue", None)
            queue = queue if queue in self.queues else DEFAULT_TASK_QUEUE_NAME
            task = Task(priority=0, func=job_task.run, backend=self.alias, queue_name=queue, run_after=None)
        return self._result(task, result)

    def _result(self, task: Task, result) -> TaskResult:
        """Django's TaskResult of a results row and its record. Arguments are kept by name, as the
        worker receives them: a positional argument given to enqueue is in `kwargs`."""
        record = getattr(result, "record", None)  # None for a row its sender did not record
        arguments, attempts = (record.arguments, record.attempts) if record else ({}, 1)
        status = STATUS.get(result.status, TaskResultStatus.READY)
        started = status != TaskResultStatus.READY or attempts > 1
        task_result = TaskResult(
            task=task, id=result.task_id, status=status, enqueued_at=result.date_created,
            started_at=result.date_started, last_attempted_at=result.date_started,
            finished_at=result.date_done if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None,
            args=arguments.get("args", []), kwargs=arguments.get("kwargs", {}), backend=self.alias,
            errors=self._errors(result), worker_ids=[result.worker or ""] * attempts if started else [],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(task_result, "_return_value", normalize_json(json.loads(result.result)))
        return task_result

    @staticmethod
    def _errors(result) -> list[TaskError]:
        if result.status not in (states.FAILURE, states.REVOKED) or not result.result:
            return []
        exception = json.loads(result.result)
        name = exception.get("exc_type", "Exception")
        # Errors the engine writes itself (a cancel, a lost worker) name no module.
        module = exception.get("exc_module") or next(
            (module.__name__ for module in (exceptions, builtins) if isinstance(getattr(module, name, None), type)),
            "builtins")
        path = f"{module}.{name}" if module != "builtins" or hasattr(builtins, name) else "builtins.Exception"
        return [TaskError(exception_class_path=path, traceback=result.traceback or "")]

