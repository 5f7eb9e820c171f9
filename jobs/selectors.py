"""Reads shared by the API, the pages and the admin, the operations pages' included."""
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

from celery import current_app, states
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Count, OuterRef, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone
from django_celery_results.models import TaskResult

from . import broker, stats
from .catalog import PROGRESS
from .models import AlertIncident, AlertRule, JobRecord, JobStats, JobStatsProgress, Queue, Worker, Workflow, WorkflowStep

# Final and in-between states, as the pages and the API filter on them.
STATES = [states.PENDING, states.STARTED, PROGRESS, states.RETRY, states.SUCCESS, states.FAILURE, states.REVOKED]


def jobs_with_details() -> QuerySet[TaskResult]:
    """Job rows with all job_details() reads, in one query: record, launcher, retry links."""
    retries = JobRecord.objects.filter(retry_of=OuterRef("pk")).order_by("result_id").values("result__task_id")
    return TaskResult.objects.select_related("record__launched_by", "record__retry_of__result", "record__step").annotate(
        retried_as_ids=ArraySubquery(retries)
    )


def sees_every_job(user: AbstractBaseUser) -> bool:
    """Whether `user` sees everyone's jobs: the results admin's view permission, as in the admin."""
    return user.has_perm("django_celery_results.view_taskresult")


def jobs_visible_to(*, user: AbstractBaseUser) -> QuerySet[TaskResult]:
    """Newest first: every job for those who may see them all, else the jobs `user` launched."""
    jobs = jobs_with_details().order_by("-date_created")
    return jobs if sees_every_job(user) else jobs.filter(record__launched_by=user)


PAGE_SIZE = 50
MAX_PAGE = 10_000  # 500,000 jobs deep; past that, a filter finds a job sooner than paging


class InvalidFilter(ValueError):
    """A list filter that cannot match: the message says which and why."""


def jobs_page(*, user: AbstractBaseUser, status: str = "", task: str = "", workflow: str = "",
              page: int = 1) -> tuple[list[TaskResult], bool]:
    """One page of the jobs `user` may see, filtered, and whether another page follows; InvalidFilter
    for an unknown status or a page out of range.

    One row more than a page tells whether there is a next page, without counting every job.
    """
    if status and status not in STATES:
        raise InvalidFilter(f"Unknown status {status!r}. Use one of: {', '.join(STATES)}.")
    if not 1 <= page <= MAX_PAGE:
        raise InvalidFilter(f"page must be between 1 and {MAX_PAGE:,}; filter by status or job to go further back.")
    jobs = jobs_visible_to(user=user)
    if status:
        jobs = jobs.filter(status=status)
    if task:
        jobs = jobs.filter(task_name=task)
    if workflow:
        if not _is_uuid(workflow):
            raise InvalidFilter(f"Unknown workflow {workflow!r}: a workflow's id is a UUID, as its page shows it.")
        jobs = jobs.filter(record__step__workflow_id=workflow)
    rows = list(jobs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def may_act_on(user: AbstractBaseUser, result: TaskResult, permission: str) -> bool:
    """Whether `user` may retry or cancel (`permission`) the job: their own, or anyone's with the
    permission. Only jobs recorded at launch, whose arguments are kept, can be acted on."""
    record = getattr(result, "record", None)
    return record is not None and (record.launched_by_id == user.pk or user.has_perm(permission))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def job_get(*, job_id: str, user: AbstractBaseUser) -> TaskResult | None:
    """The job with id `job_id` if `user` may see it, else None (also for ids that are not UUIDs)."""
    if not _is_uuid(job_id):
        return None
    return jobs_visible_to(user=user).filter(task_id=job_id).first()


# Modules whose exceptions are stored by the arguments they are built from and say their message
# only as text (str): the engine's own.
EXCEPTIONS_WITH_MESSAGES = {"jobs.exceptions"}


def job_retry_refusal(result: TaskResult) -> str | None:
    """Why `result` may not be retried now (None: it may): a job not finished would run twice, and
    a workflow step is retried only as the last attempt of a failed step of a failed workflow."""
    if result.status not in states.READY_STATES:
        return (f"Job {result.task_id} is {result.status}, not finished: a retry would run it a second time "
                "beside it. Cancel it first, or wait for it to end.")
    record = getattr(result, "record", None)
    if record is None or not record.step_id:
        return None
    step = WorkflowStep.objects.select_related("workflow").get(pk=record.step_id)
    if step.task_id != result.task_id:
        return f"Job {result.task_id} is an earlier attempt of its workflow step; retry its latest, {step.task_id}."
    if step.sending_at is None:
        return (f"Step {step.path} never ran: its workflow failed before it was due. Retry the failed step it waits "
                "for, and it runs in its turn.")
    if result.status == states.SUCCESS or step.workflow.state != Workflow.State.FAILURE:
        return (f"Only a failed or cancelled step of a failed workflow is retried; workflow {step.workflow_id} is "
                f"{step.workflow.get_state_display().lower()} and this step {result.status}.")
    return None


def job_outcome(result: TaskResult) -> tuple[Any, str | None]:
    """The job's return value once it succeeded, and its error message once one occurred."""
    if result.status == states.SUCCESS:
        return json.loads(result.result) if result.result else None, None
    if result.status in (states.FAILURE, states.REVOKED, states.RETRY) and result.result:
        exception = json.loads(result.result)
        if exception.get("exc_module") in EXCEPTIONS_WITH_MESSAGES:  # stored by their arguments
            message = str(current_app.backend.exception_to_python(exception))
        else:
            parts = exception.get("exc_message") or ()
            message = parts if isinstance(parts, str) else " ".join(str(part) for part in parts)
        return None, f"{exception.get('exc_type', 'Error')}: {message}" if message else exception.get("exc_type")
    return None, None


def job_progress(result: TaskResult) -> dict[str, Any]:
    """How far the job is: current, total, percent (None while unknown) and a message."""
    if result.status == PROGRESS and result.result:
        meta = json.loads(result.result)
        current, total = meta.get("current"), meta.get("total")
        percent = round(100 * current / total, 1) if total else None
        return {"current": current, "total": total, "percent": percent, "message": meta.get("message", "")}
    return {"current": None, "total": None, "percent": 100.0 if result.status == states.SUCCESS else None,
            "message": ""}


# How long the queues' state read for job pages is reused: a page polling every second, or a list of
# 50 queued jobs, costs two small queries a few seconds, not two per job.
QUEUES_SERVED_SECONDS = 3
_queues_served: tuple[float, set[str], set[str]] = (0.0, set(), set())


def job_waiting_reason(queue: str) -> str | None:
    """Why a job queued on `queue` may wait for nobody: the queue is paused, or no live worker (by
    their heartbeats) consumes it. None when a worker will take it in its turn."""
    global _queues_served
    read_at, paused, consumed = _queues_served
    if time.monotonic() - read_at > QUEUES_SERVED_SECONDS:
        heard_since = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
        alive = Worker.objects.filter(stopped_at=None, last_heartbeat__gte=heard_since)
        paused, consumed = paused_queues(), {queue for queues in alive.values_list("consuming", flat=True) for queue in queues}
        _queues_served = (time.monotonic(), paused, consumed)
    if not queue:
        return None
    if queue in paused:
        return f"Queue {queue} is paused: no worker takes its jobs until an operator resumes it."
    if queue not in consumed:
        return f"No worker is consuming queue {queue}: the job waits until one is started for it."
    return None


def job_details(result: TaskResult) -> dict[str, Any]:
    """Everything the API and the pages show about one job (a row of jobs_with_details())."""
    value, error = job_outcome(result)
    record = getattr(result, "record", None)
    deliveries = [*(record.deliveries if record else [])]
    if result.date_started is not None:  # the latest delivery, as the row says it now
        deliveries.append({"started_at": result.date_started.isoformat(), "worker": result.worker,
                           "ended": result.status.lower() if result.status in states.READY_STATES else "running"})
    return {
        "id": result.task_id,
        "task": result.task_name,
        "status": result.status,
        "result": value,
        "error": error,
        "progress": job_progress(result),
        "arguments": record.arguments if record else None,
        "queue": record.queue if record else None,
        "worker": result.worker,
        "launched_by": record.launched_by.get_username() if record and record.launched_by else None,
        "origin": record.origin if record else None,
        "periodic_task": result.periodic_task_name,
        "attempt": max(record.attempts if record else 1, len(deliveries)),
        "deliveries": deliveries,
        "waiting": job_waiting_reason(record.queue) if result.status == states.PENDING and record else None,
        "last_error": record.last_error if record else "",
        "retry_of": record.retry_of.result.task_id if record and record.retry_of else None,
        "retried_as": result.retried_as_ids or [],
        "workflow": record.step.workflow_id if record and record.step else None,
        "created_at": result.date_created,
        "started_at": result.date_started,
        "done_at": result.date_done if result.status in states.READY_STATES else None,
    }


def job_counts_by_day(*, days: int) -> dict[str, dict[str, int]]:
    """Jobs created in the last `days` days, counted per day (in the site's time zone) and status."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        TaskResult.objects.filter(date_created__gte=since)
        .annotate(day=TruncDate("date_created", tzinfo=timezone.get_current_timezone()))
        .values("day", "status")
        .annotate(count=Count("id"))
        .order_by("day", "status")
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["day"].isoformat(), {})[row["status"]] = row["count"]
    return counts


def paused_queues() -> set[str]:
    """The names of the queues paused now."""
    return set(Queue.objects.filter(paused_at__isnull=False).values_list("name", flat=True))


def job_queue_names() -> list[str]:
    """The queues jobs go to: the configured ones and any an operator has acted on."""
    configured = [queue.name for queue in current_app.amqp.queues.values()]
    return sorted(set(configured) | set(Queue.objects.values_list("name", flat=True)))


def queues_overview() -> tuple[list[dict[str, Any]], broker.QueueStats | None, str]:
    """Each job queue with the broker's figures for it (None where the broker cannot say) and its
    paused state; the dead-letter queue's figures; and the broker's error, or "" when it answered."""
    try:
        stats, error = broker.queues_stats(), ""
    except broker.BrokerUnavailable as exc:  # RabbitMQ itself may still answer: its counts are shown
        stats, error = {}, str(exc)
    try:
        # Depths and consumers as of now, not as of the management API's last sample: the page
        # shown after a purge, a pause or a launch agrees with what was just done.
        for name, (ready, consumers) in broker.queues_counted([*job_queue_names(), settings.DEAD_LETTER_QUEUE]).items():
            stats.setdefault(name, broker.QueueStats(name=name))
            stats[name].ready, stats[name].consumers = ready, consumers
    except broker.BrokerUnavailable as exc:
        stats, error = {}, str(exc)
    paused = {queue.name: queue for queue in Queue.objects.filter(paused_at__isnull=False).select_related("paused_by")}
    rows = []
    for name in job_queue_names():
        figures = stats.get(name)
        rows.append({
            "name": name, "stats": figures, "paused": paused.get(name),
            # Jobs that nobody will take: waiting on a queue that no worker consumes, unpaused.
            "stranded": bool(figures and figures.ready and not figures.consumers and name not in paused),
        })
    return rows, stats.get(settings.DEAD_LETTER_QUEUE), error


UNFINISHED = [states.PENDING, states.STARTED, PROGRESS, states.RETRY]
# Unfinished jobs are counted exactly up to this many per state, through the status index; past it,
# the pages say "10000+" (how deep a backlog is, the queues' figures tell).
COUNT_CAP = 10_000


def unfinished_counts() -> dict[str, int]:
    """Jobs queued or running, by state, each count stopping at COUNT_CAP."""
    return {state: TaskResult.objects.filter(status=state)[:COUNT_CAP].count() for state in UNFINISHED}


def job_counts_now() -> dict[str, int]:
    """Jobs by state: those not yet finished (see unfinished_counts), and those that finished in the
    last hour (from the job statistics, plus the results finished since they last counted: a short
    range of the date_done index)."""
    counts = dict.fromkeys(STATES, 0)
    counts.update(unfinished_counts())
    since = timezone.now() - timedelta(hours=1)
    counted_to = JobStatsProgress.objects.filter(pk=1).values_list("counted_to", flat=True).first() or since
    counted = JobStats.objects.filter(period=JobStats.Period.MINUTE, start__gte=since).aggregate(
        **{state: Sum(field, default=0) for state, field in JobStats.STATE_FIELDS.items()})
    for status, count in counted.items():
        counts[status] += count
    recent = TaskResult.objects.filter(date_done__gt=max(counted_to, since), status__in=states.READY_STATES)
    for status, count in recent.values_list("status").annotate(Count("id")):
        counts[status] = counts.get(status, 0) + count
    return counts


# The charts: how far back each looks, and the statistics it reads (one row per point and group).
STATS_RANGES = {
    "hour": (timedelta(hours=1), JobStats.Period.MINUTE),
    "day": (timedelta(days=1), JobStats.Period.HOUR),
    "week": (timedelta(days=7), JobStats.Period.SIX_HOURS),
    "month": (timedelta(days=30), JobStats.Period.DAY),
}


class _Figures:
    """Counts by state and wait and run histograms, summed over statistics rows."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.wait: dict[str, int] = {}
        self.run: dict[str, int] = {}

    def add(self, counts: dict[str, int], wait: dict[str, int], run: dict[str, int]) -> "_Figures":
        for status, count in counts.items():
            self.counts[status] = self.counts.get(status, 0) + count
        stats.histogram_add(self.wait, wait)
        stats.histogram_add(self.run, run)
        return self

    def summary(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        return {
            "total": total, "counts": self.counts,
            "failure_rate": self.counts.get(states.FAILURE, 0) / total if total else None,
            "wait_p50": stats.percentile(self.wait, 0.5), "wait_p95": stats.percentile(self.wait, 0.95),
            "run_p50": stats.percentile(self.run, 0.5), "run_p95": stats.percentile(self.run, 0.95),
        }


def _summary(rows) -> dict[str, Any]:
    figures = _Figures()
    for row in rows:
        figures.add(row.counts, row.wait, row.run)
    return figures.summary()


def job_stats(*, period: str, task_name: str = "", queue: str = "") -> dict[str, Any]:
    """The charts' figures for the last `period` (hour, day, week, month), for every job or one job
    or queue: per point, jobs by final state and wait and run p50/p95; and the same per job and per
    queue over the whole period. Read from JobStats only, each row once."""
    span, resolution = STATS_RANGES[period]
    step = JobStats.LENGTH[resolution]
    points = int(span / step)
    first = JobStats.period_start(resolution, timezone.now()) - step * (points - 1)
    rows = JobStats.objects.filter(period=resolution, start__gte=first)
    if task_name:
        rows = rows.filter(task_name=task_name)
    if queue:
        rows = rows.filter(queue=queue)
    by_point = [_Figures() for _ in range(points)]
    by_job: dict[str, _Figures] = {}
    by_queue: dict[str, _Figures] = {}
    for start, name, queue_name, wait, run, *counted in rows.values_list(
            "start", "task_name", "queue", "wait", "run", *JobStats.STATE_FIELDS.values()):
        counts = dict(zip(JobStats.STATE_FIELDS, counted, strict=True))
        by_point[min(int((start - first) / step), points - 1)].add(counts, wait, run)
        by_job.setdefault(name, _Figures()).add(counts, wait, run)
        by_queue.setdefault(queue_name, _Figures()).add(counts, wait, run)
    total = _Figures()
    for figures in by_point:
        total.add(figures.counts, figures.wait, figures.run)
    return {
        "period": period, "starts": [first + step * index for index in range(points)], "step": step,
        "points": [figures.summary() for figures in by_point], "total": total.summary(),
        "jobs": {name: figures.summary() for name, figures in sorted(by_job.items())},
        "queues": {name: figures.summary() for name, figures in sorted(by_queue.items())},
    }


def workers_recent() -> QuerySet[Worker]:
    """The workers heard from in the last day (the lost and stopped among them); older rows are
    history nobody acts on."""
    return Worker.objects.filter(last_heartbeat__gte=timezone.now() - timedelta(days=1))


def workers_overview() -> list[Worker]:
    """The recent workers, busy and idle ones first."""
    order = {"busy": 0, "idle": 1, "lost": 2, "stopped": 3}
    return sorted(workers_recent(), key=lambda worker: (order[worker.status], worker.hostname))


def consumers_by_worker() -> tuple[dict[str, list[broker.Consumer]], list[broker.Consumer]]:
    """The broker's consumers by the hostname of the worker they belong to (matched on the address
    of its broker connection, which its heartbeat names), and those of no known worker. Raises
    BrokerUnavailable."""
    hostnames = dict(workers_recent().exclude(broker_address="").values_list("broker_address", "hostname"))
    by_worker, unknown = {}, []
    for consumer in broker.consumers(job_queue_names()):
        if consumer.address in hostnames:
            by_worker.setdefault(hostnames[consumer.address], []).append(consumer)
        else:
            unknown.append(consumer)
    return by_worker, unknown


def queue_consumers(name: str) -> list[tuple[str | None, broker.Consumer]]:
    """The consumers of queue `name`, each with its worker's hostname (None: not a known worker)."""
    by_worker, unknown = consumers_by_worker()
    return ([(hostname, consumer) for hostname, found in sorted(by_worker.items()) for consumer in found
             if consumer.queue == name] + [(None, consumer) for consumer in unknown if consumer.queue == name])


WAITING_SHOWN = 50


def queue_waiting(name: str) -> tuple[list[TaskResult], int]:
    """The oldest jobs recorded as sent to queue `name` and not yet taken (PENDING): the messages
    waiting in it, read from their records rather than taken from the broker (a look at a quorum
    queue's messages counts as a delivery, and six dead-letter them). And how many, to COUNT_CAP."""
    waiting = TaskResult.objects.select_related("record__launched_by").filter(status=states.PENDING, record__queue=name)
    # A workflow's step is in the queue once sent; before that, it waits for its parents, not here.
    waiting = waiting.filter(Q(record__step__isnull=True) | Q(record__step__sent_at__isnull=False))
    return list(waiting.order_by("date_created")[:WAITING_SHOWN]), waiting[:COUNT_CAP].count()


def dead_letters_peek(*, limit: int = 200) -> tuple[list[broker.DeadLetter], int]:
    """The first `limit` messages of the dead-letter queue (left in it), and how many it holds."""
    letters, total = [], 0
    with broker.broker_channel() as channel:
        for messages in broker.messages_taken(channel, settings.DEAD_LETTER_QUEUE, batch=limit):
            letters = [broker.DeadLetter.from_message(message) for message in messages]
            total = len(messages) + messages[-1].delivery_info["message_count"]
            break
    return letters, total


# Text searches return at most this many jobs from each place they look (arguments, errors).
SEARCH_LIMIT = 1000
_ID_PREFIX = re.compile(r"[0-9a-f]{4}[0-9a-f-]{0,32}")


def jobs_search(queryset: QuerySet[TaskResult], term: str) -> QuerySet[TaskResult]:
    """The jobs of `queryset` matching what an operator pastes, each way through an index: a job id
    or its first characters; a job name, exactly; otherwise text (3 characters or more, any case)
    in the job's arguments or, for failed jobs, in its error (trigram indexes: migration 0015)."""
    if not term:
        return queryset
    if _ID_PREFIX.fullmatch(term.lower()):
        return queryset.filter(task_id__startswith=term.lower())
    if " " not in term and queryset.filter(task_name=term).exists():
        return queryset.filter(task_name=term)
    if len(term) < 3:
        return queryset.none()
    in_arguments = JobRecord.objects.annotate(text=Cast("arguments", TextField())).filter(text__icontains=term)
    in_errors = TaskResult.objects.filter(status=states.FAILURE, result__icontains=term)
    # Each found through its own index, then joined by id: an OR across the two tables would scan.
    ids = [*in_arguments.order_by().values_list("pk", flat=True)[:SEARCH_LIMIT],
           *in_errors.order_by().values_list("pk", flat=True)[:SEARCH_LIMIT]]
    return queryset.filter(pk__in=ids)


# A failure rate over fewer jobs than this says little (1 of 1 is 100%): such windows do not fire.
ALERT_MIN_JOBS = 5


def alert_measure(rule: AlertRule, *, now) -> float | None:
    """The rule's measure over its last `minutes` of per-minute statistics, or None when too few
    jobs finished to say."""
    rows = JobStats.objects.filter(period=JobStats.Period.MINUTE, start__gte=now - timedelta(minutes=rule.minutes))
    if rule.task_name:
        rows = rows.filter(task_name=rule.task_name)
    summary = _summary(rows.only(*JobStats.STATE_FIELDS.values(), "wait", "run"))
    if rule.measure == AlertRule.Measure.FAILURE_RATE:
        return summary["failure_rate"] * 100 if summary["total"] >= ALERT_MIN_JOBS else None
    return summary["wait_p95"]


def alerts_firing() -> list[AlertIncident]:
    """The incidents going on now, for the overview."""
    return list(AlertIncident.objects.filter(ended_at__isnull=True).select_related("rule"))


def workflows_visible_to(*, user: AbstractBaseUser) -> QuerySet[Workflow]:
    """Newest first: every workflow for those who see every job, else those `user` launched."""
    flows = Workflow.objects.select_related("launched_by")
    return flows if sees_every_job(user) else flows.filter(launched_by=user)


def workflow_get(*, workflow_id: str, user: AbstractBaseUser) -> Workflow | None:
    """The workflow with id `workflow_id` if `user` may see it, else None."""
    if not _is_uuid(workflow_id):
        return None
    return workflows_visible_to(user=user).filter(pk=workflow_id).first()


def may_act_on_workflow(user: AbstractBaseUser, flow: Workflow, permission: str) -> bool:
    """Whether `user` may cancel or retry in (`permission`) the workflow: their own, or with the permission."""
    return flow.launched_by_id == user.pk or user.has_perm(permission)


GRAPH_NODES_PER_LAYER = 20  # a chord of 10,000 is drawn as 20 members and a node counting the rest


def workflow_graph(flow: Workflow) -> dict[str, Any]:
    """The workflow's steps in layers (a step one layer after its furthest parent), each step with its
    job's state; past GRAPH_NODES_PER_LAYER a layer's other steps are counted by state, not drawn."""
    steps = list(WorkflowStep.objects.filter(workflow=flow).order_by("position")
                 .values_list("pk", "position", "path", "task_name", "task_id"))
    edges = list(WorkflowStep.parents.through.objects.filter(from_workflowstep__workflow=flow)
                 .values_list("from_workflowstep_id", "to_workflowstep_id"))
    status = dict(TaskResult.objects.filter(task_id__in=WorkflowStep.objects.filter(workflow=flow).values("task_id"))
                  .values_list("task_id", "status"))
    parents: dict[int, list[int]] = {}
    for child, parent in edges:
        parents.setdefault(child, []).append(parent)
    layer: dict[int, int] = {}
    for pk, *_ in steps:  # positions follow the spec, so parents come first
        layer[pk] = 1 + max((layer[parent] for parent in parents.get(pk, ())), default=-1)
    layers: list[dict[str, Any]] = [{"nodes": [], "more": {}, "more_parents": set()}
                                    for _ in range(max(layer.values(), default=-1) + 1)]
    counts: dict[str, int] = {}
    drawn = set()
    for pk, position, path, task_name, task_id in steps:
        state = status.get(task_id, states.PENDING)
        counts[state] = counts.get(state, 0) + 1
        column = layers[layer[pk]]
        if len(column["nodes"]) < GRAPH_NODES_PER_LAYER:
            drawn.add(pk)
            column["nodes"].append({"id": pk, "position": position, "path": path, "job": task_name,
                                    "job_id": task_id, "status": state, "parents": parents.get(pk, [])})
        else:
            column["more"][state] = column["more"].get(state, 0) + 1
            column["more_parents"].update(parents.get(pk, ()))

    def shown(ids) -> list:  # a parent not drawn is the "more" box of its layer
        return sorted({pk if pk in drawn else f"more-{layer[pk]}" for pk in ids}, key=str)

    for column in layers:
        for node in column["nodes"]:
            node["parents"] = shown(node["parents"])
        column["more_parents"] = shown(column["more_parents"])
    return {"layers": layers, "counts": counts, "done": counts.get(states.SUCCESS, 0)}


def workflow_failed_steps(flow: Workflow, *, limit: int = 20) -> list[dict[str, str]]:
    """The first steps whose job failed or was cancelled (not those that never ran): path, job name
    and job id, to retry them."""
    ended = TaskResult.objects.filter(status__in=[states.FAILURE, states.REVOKED]).values("task_id")
    steps = flow.steps.filter(task_id__in=ended, sending_at__isnull=False).order_by("position")
    return [{"path": path, "job_id": task_id, "job": task_name}
            for path, task_id, task_name in steps.values_list("path", "task_id", "task_name")[:limit]]


def workflow_unfinished(flow: Workflow) -> dict[str, int]:
    """A workflow's steps not finished, by what cancelling does to them: running (stopped), queued
    (dropped) and not yet sent (never sent)."""
    steps = flow.steps.values("task_id")
    unfinished = dict(TaskResult.objects.filter(task_id__in=steps).exclude(status__in=states.READY_STATES)
                      .values_list("status").annotate(Count("id")))
    queued = unfinished.pop(states.PENDING, 0)
    unsent = flow.steps.filter(sent_at__isnull=True, task_id__in=TaskResult.objects.filter(
        status=states.PENDING).values("task_id")).count()
    return {"running": sum(unfinished.values()), "queued": queued - unsent, "unsent": unsent}


def workflow_details(flow: Workflow) -> dict[str, Any]:
    """What the API answers about a workflow, and what its pages show besides the graph."""
    graph = workflow_graph(flow)
    return {
        "id": flow.id, "name": flow.name, "state": flow.state, "steps_total": flow.steps_total,
        "steps_done": graph["done"], "counts": graph["counts"], "result": flow.result, "error": flow.error,
        "launched_by": flow.launched_by.get_username() if flow.launched_by else None, "origin": flow.origin,
        "created_at": flow.created_at, "finished_at": flow.finished_at,
        "steps": [node for layer in graph["layers"] for node in layer["nodes"]],
        "graph": graph,
    }
