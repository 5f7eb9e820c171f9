"""Running workflows: launch, a step's success or failure, cancel, retry in place, repair."""
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import current_app, states
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from ..catalog import find_job, new_task_id
from ..exceptions import InvalidWorkflow, JobNotCancellable
from ..records.models import JobAction, JobRecord
from ..records.selectors import jobs_with_details
from ..records.services import job_queue, job_records_create, recorded, revoked_result
from ..records.unfinished import unfinished_limit_check
from .models import Workflow, WorkflowStep
from .specs import WorkflowTask, compile_spec

logger = logging.getLogger(__name__)

# Workflows: graphs of jobs (jobs/workflows/specs.py plans them). Every step is recorded PENDING at launch;
# a step is sent when its last parent succeeds, by the worker that ran that parent, and carries its
# id in this message header, which the worker reads back as request.workflow_step (jobs/workflows/receivers.py).
WORKFLOW_STEP_HEADER = "workflow_step"


Edge = WorkflowStep.parents.through  # from_workflowstep: the child; to_workflowstep: its parent


RECORD_BATCH = 1000


def workflow_launch(*, spec: Any, name: str = "", launched_by: AbstractBaseUser | None = None,
                    origin: str = JobRecord.Origin.CODE, system: bool = False,
                    launcher: JobRecord | None = None, admit: Callable[[int], None] | None = None,
                    unique_key: str | None = None) -> Workflow:
    """Check `spec` whole, record the workflow and every step PENDING, and send the steps that wait for
    nothing once the transaction commits.

    Raises InvalidWorkflow (naming each wrong step) or another JobLaunchError before anything is
    written. Once written, the workflow runs: steps the broker could not take yet are sent by
    workflows_repair when it is back.
    `admit` is called with the number of steps before anything is written and may refuse them
    (the API's: each step counts against JOBS_LAUNCH_RATE); the launcher's JOBS_MAX_UNFINISHED
    counts them too. With `unique_key` (a unique declared workflow's), a workflow running with that key
    is returned instead of launching another; `launched` on the workflow returned says which.
    """
    planned = compile_spec(spec, user=None if system else launched_by)
    if admit is not None:
        admit(len(planned))
    with_children = {parent for step in planned for parent in step.parents}
    with transaction.atomic():
        unfinished_limit_check(launched_by, len(planned))
        flow = Workflow(name=name, spec=spec, launched_by=launched_by, origin=origin, launcher=launcher,
                        steps_total=len(planned), ends_waiting=len(planned) - len(with_children), unique_key=unique_key)
        if (running := _workflow_insert_unique(flow)) is not None:
            running.launched = False
            return running
        steps = WorkflowStep.objects.bulk_create([
            WorkflowStep(workflow=flow, position=step.position, path=step.path[:255], task_name=step.task.name,
                         kwargs=step.kwargs, input=step.input, gathers=step.gathers, task_id=new_task_id(),
                         waiting=len(step.parents), sending_at=None if step.parents else timezone.now())
            for step in planned
        ], batch_size=RECORD_BATCH)
        Edge.objects.bulk_create([
            Edge(from_workflowstep_id=steps[step.position].pk, to_workflowstep_id=steps[parent].pk)
            for step in planned for parent in step.parents
        ], batch_size=RECORD_BATCH * 5)
        for start in range(0, len(steps), RECORD_BATCH):
            job_records_create([{
                "task_id": step.task_id, "task_name": step.task_name, "args": [], "kwargs": step.kwargs,
                "queue": job_queue(step.task_name), "periodic_task_name": None, "launched_by": launched_by,
                "origin": origin, "step_id": step.pk,
            } for step in steps[start:start + RECORD_BATCH]])
        first = [step for step in steps if not step.waiting]
        transaction.on_commit(lambda: _workflow_launch_send(flow, first))
    flow.launched = True
    return flow


def _workflow_insert_unique(flow: Workflow) -> Workflow | None:
    """Insert `flow`; None, or the running workflow holding its unique key. Two launches at once: the
    second's insert waits on the unique index for the first's transaction, then finds it."""
    while True:
        try:
            with transaction.atomic():
                flow.save(force_insert=True)
            return None
        except IntegrityError:
            if flow.unique_key is None:
                raise
        running = Workflow.objects.filter(unique_key=flow.unique_key, state=Workflow.State.RUNNING).first()
        if running is not None:
            return running
        # It ended between the two statements: try again.


def _workflow_launch_send(flow: Workflow, steps: list[WorkflowStep]) -> None:
    """Send a new workflow's first steps. If the broker cannot take them, the launch still stands:
    the workflow is recorded whole and its unsent steps stay claimed, so workflows_repair sends them
    once the broker is back. Answering "not started" could be untrue: a step whose confirm was lost
    may have reached the queue and be running already."""
    try:
        _workflow_steps_send(steps)
    except OperationalError as exc:
        logger.warning("Workflow %s: its first steps will be sent once the job queue is back (%s).", flow.id, exc)


def workflow_launch_declared(*, name: str, kwargs: dict[str, Any], launched_by: AbstractBaseUser | None,
                             origin: str, admit: Callable[[int], None] | None = None) -> Workflow:
    """Launch the workflow declared as `name` (@workflow) with `kwargs`, now: its steps are recorded
    before this returns, with no job to launch it."""
    task = find_job(name, user=launched_by)
    if not isinstance(task, WorkflowTask):
        raise InvalidWorkflow([{"field": "workflow", "message": f"{name} is a job, not a declared workflow; launch it "
                                "at /api/jobs/ or as a step"}])
    arguments = task.validate_arguments(kwargs=kwargs)
    spec = task.build(**{field: getattr(arguments, field) for field in arguments.model_fields})
    return workflow_launch(spec=spec, name=name, launched_by=launched_by, origin=origin, system=True, admit=admit,
                           unique_key=task.unique.key(name, arguments.model_dump(mode="json")) if task.unique else None)


def workflow_launch_from_job(*, name: str, spec: Any, launcher_id: str, unique_key: str | None = None) -> Workflow:
    """Launch a declared workflow from the job that runs it (a catalog launch, a schedule), on the
    behalf of whoever launched that job."""
    launcher = JobRecord.objects.select_related("launched_by").filter(result__task_id=launcher_id).first()
    return workflow_launch(
        spec=spec, name=name, system=True, launcher=launcher,
        launched_by=launcher.launched_by if launcher else None,
        origin=launcher.origin if launcher else JobRecord.Origin.CODE, unique_key=unique_key,
    )


def _step_input(step: WorkflowStep) -> Any:
    """What the step's input parameter receives: its parent's result, or its parents' in order."""
    parents = list(WorkflowStep.objects.filter(children=step).order_by("position").values_list("task_id", flat=True))
    results = dict(TaskResult.objects.filter(task_id__in=parents).values_list("task_id", "result"))
    values = [json.loads(results[task_id]) for task_id in parents]
    return values if step.gathers else values[0]


def _workflow_steps_send(steps: list[WorkflowStep]) -> None:
    """Publish steps claimed for sending (sending_at set), each with its input, and mark them sent.
    OperationalError when the broker cannot take them: the unsent stay claimed, for workflows_repair."""
    token = recorded.set(frozenset(step.task_id for step in steps))  # recorded at launch
    sent = []
    try:
        for step in steps:
            kwargs = {**step.kwargs, step.input: _step_input(step)} if step.input else step.kwargs
            find_job(step.task_name).apply_async(kwargs=kwargs, task_id=step.task_id,
                                                 headers={WORKFLOW_STEP_HEADER: step.pk})
            sent.append(step.task_id)
            if len(sent) == RECORD_BATCH:
                _steps_sent(sent)
    finally:
        recorded.reset(token)
        _steps_sent(sent)


def _steps_sent(task_ids: list[str]) -> None:
    """Mark sent the steps of these jobs, a batch at a time (not a statement per step, which competes
    with the workers for the database while a chord's thousands of members go out); empty the list."""
    WorkflowStep.objects.filter(task_id__in=task_ids).update(sent_at=timezone.now())
    task_ids.clear()


def _steps_claim(steps, *, unsent: bool = False) -> list[WorkflowStep]:
    """Claim for sending, once whoever else tries, the steps of `steps` that wait for nothing more;
    with `unsent`, also those claimed before but not sent (their sender died)."""
    ready = steps.filter(waiting=0, workflow__state=Workflow.State.RUNNING)
    ready = ready.filter(sent_at__isnull=True) if unsent else ready.filter(sending_at__isnull=True)
    ready = list(ready.select_for_update(of=("self",)))
    WorkflowStep.objects.filter(pk__in=[step.pk for step in ready]).update(sending_at=timezone.now())
    return ready


def _steps_send_on_commit(steps: list[WorkflowStep]) -> None:
    def send():
        try:
            _workflow_steps_send(steps)
        except OperationalError as exc:  # sent by workflows_repair once the broker is back
            logger.warning("Workflow steps not sent now (%s): %s", exc, ", ".join(step.task_id for step in steps))

    if steps:
        transaction.on_commit(send)


# One statement for what finishing a step changes, the same whichever worker runs it: the step is
# counted once, and each child's count of parents to wait for goes down by one.
STEP_SUCCEEDED_SQL = """
WITH counted AS (
    UPDATE {steps} SET counted = true WHERE id = %s AND task_id = %s AND NOT counted RETURNING id, workflow_id
), children AS (
    UPDATE {steps} child SET waiting = child.waiting - 1
    FROM {edges} edge, counted
    WHERE edge.to_workflowstep_id = counted.id AND child.id = edge.from_workflowstep_id
    RETURNING child.id, child.waiting
)
SELECT (SELECT workflow_id FROM counted), (SELECT count(*) FROM children),
       ARRAY(SELECT id FROM children WHERE waiting = 0)
"""


def workflow_step_succeeded(*, step_id: int, task_id: str) -> None:
    """A step's job succeeded: count it in its children, once however often it is delivered, and send
    those it was the last parent of; or, a last step, finish the workflow when it was the last one."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(STEP_SUCCEEDED_SQL.format(steps=WorkflowStep._meta.db_table, edges=Edge._meta.db_table),
                       [step_id, task_id])
        workflow_id, children, ready = cursor.fetchone()
        if workflow_id is None:  # counted before (a message delivered again), or an attempt since retried
            # The worker that counted it may have died before sending the children it claimed.
            children = WorkflowStep.objects.filter(parents=step_id, parents__task_id=task_id)
            _steps_send_on_commit(_steps_claim(children, unsent=True))
            return
        elif not children:  # nothing follows it: one of the workflow's ends
            Workflow.objects.filter(pk=workflow_id).update(ends_waiting=F("ends_waiting") - 1)
            Workflow.objects.filter(pk=workflow_id, ends_waiting=0, state=Workflow.State.RUNNING).update(
                state=Workflow.State.SUCCESS, finished_at=timezone.now(), result=_workflow_result(workflow_id))
            return
        elif not ready:  # its children wait for other parents
            return
        else:
            ready = WorkflowStep.objects.filter(pk__in=ready)
        _steps_send_on_commit(_steps_claim(ready))


def _workflow_result(workflow_id: str) -> Any:
    """The workflow's result: its last step's, or the list of its last steps' in order."""
    ends = WorkflowStep.objects.filter(workflow_id=workflow_id, children__isnull=True).order_by("position")
    results = dict(TaskResult.objects.filter(task_id__in=ends.values("task_id")).values_list("task_id", "result"))
    values = [json.loads(results[task_id]) for task_id in ends.values_list("task_id", flat=True)]
    return values[0] if len(values) == 1 else values


def workflow_step_failed(*, step_id: int, task_id: str, error: str) -> None:
    """A step's job failed for good (or was cancelled or purged): the workflow fails, naming it. Steps
    already sent run to their end; those not sent never will, and end REVOKED saying why, so nothing
    waits PENDING for ever. Retrying the step brings them back (workflow_step_retry)."""
    step = WorkflowStep.objects.filter(pk=step_id, task_id=task_id).first()
    if step is None:
        return
    with transaction.atomic():
        Workflow.objects.filter(pk=step.workflow_id, state=Workflow.State.RUNNING).update(
            state=Workflow.State.FAILURE, finished_at=timezone.now(),
            error=f"Step {step.path} ({step.task_name}, job {task_id}) {error}"[:10_000])
        unsent = WorkflowStep.objects.filter(workflow_id=step.workflow_id, sending_at__isnull=True)
        TaskResult.objects.filter(task_id__in=unsent.values("task_id"), status=states.PENDING).update(
            status=states.REVOKED, date_done=timezone.now(),
            result=revoked_result(f"not run: step {step.path} of its workflow {error}"))


def workflow_steps_revoked(*, task_ids: list[str], why: str) -> None:
    """Jobs ended REVOKED by someone (cancelled, purged): a workflow step among them fails its workflow
    as a failed step would, so it never stands RUNNING with a step that will not run."""
    for step_id, task_id in WorkflowStep.objects.filter(task_id__in=task_ids).values_list("pk", "task_id"):
        workflow_step_failed(step_id=step_id, task_id=task_id, error=why)


def _workflow_stop(flow: Workflow, *, state: str, user: AbstractBaseUser | None, error: str) -> tuple[int, list[str]]:
    """End the workflow as `state`, and every step not finished REVOKED; how many, and the ids of those
    that were running."""
    now = timezone.now()
    Workflow.objects.filter(pk=flow.pk).update(state=state, finished_at=now, error=error, cancelled_by=user)
    unfinished = TaskResult.objects.filter(task_id__in=flow.steps.values("task_id")).exclude(
        status__in=states.READY_STATES)
    running = list(unfinished.exclude(status__in=[states.PENDING, states.RECEIVED]).values_list("task_id", flat=True))
    return unfinished.update(status=states.REVOKED, date_done=now, result=revoked_result(error)), running


def workflow_cancel(*, workflow: Workflow, user: AbstractBaseUser) -> int:
    """Cancel a workflow: queued steps never start, running ones are stopped (SIGTERM), the rest never
    sent; audited. Returns how many steps were cancelled."""
    if workflow.state in (Workflow.State.SUCCESS, Workflow.State.REVOKED):
        raise JobNotCancellable(f"Workflow {workflow.id} already ended ({workflow.get_state_display().lower()}); "
                                "there is nothing to cancel.")
    with transaction.atomic():
        cancelled, running = _workflow_stop(workflow, state=Workflow.State.REVOKED, user=user, error=f"cancelled by {user}")
        JobAction.objects.create(workflow=workflow, kind=JobAction.Kind.CANCEL, actor=user,
                                 detail=f"{cancelled} steps cancelled, {len(running)} of them stopped while running")
        if running:  # the rest are REVOKED rows: a worker that receives one skips it (JobTask)
            transaction.on_commit(lambda: current_app.control.revoke(running, terminate=True, signal="SIGTERM"))
    return cancelled


def workflow_step_retry(*, result: TaskResult, user: AbstractBaseUser) -> TaskResult:
    """Run a failed step of a failed workflow again, in its place: the workflow runs again and goes on
    downstream from it once it succeeds. Audited like a job's retry."""
    record = result.record
    step = WorkflowStep.objects.select_related("workflow").get(pk=record.step_id)
    with transaction.atomic():
        task_id = new_task_id()
        job_records_create([{
            "task_id": task_id, "task_name": step.task_name, "args": [], "kwargs": step.kwargs,
            "queue": record.queue, "periodic_task_name": None, "launched_by": user,
            "origin": JobRecord.Origin.RETRY, "retry_of": record, "step_id": step.pk,
        }])
        WorkflowStep.objects.filter(pk=step.pk).update(task_id=task_id, counted=False, sending_at=timezone.now(),
                                                       sent_at=None)
        Workflow.objects.filter(pk=step.workflow_id).update(state=Workflow.State.RUNNING, finished_at=None, error="")
        # The steps its failure left unsent wait again (the failure ended them REVOKED, "not run").
        unsent = step.workflow.steps.filter(sending_at__isnull=True).exclude(pk=step.pk)
        TaskResult.objects.filter(task_id__in=unsent.values("task_id"), status=states.REVOKED).update(
            status=states.PENDING, date_done=timezone.now(), result=None)
        JobAction.objects.create(record=record, workflow_id=step.workflow_id, kind=JobAction.Kind.RETRY, actor=user,
                                 detail=f"as {task_id}, in its workflow")
        step.task_id = task_id
        # Steps that became ready while the workflow stood failed go too.
        _steps_send_on_commit([step, *_steps_claim(step.workflow.steps.all())])
    return jobs_with_details().get(task_id=task_id)


WORKFLOW_REPAIR_AFTER = timedelta(minutes=1)


def workflows_repair() -> int:
    """Maintenance: finish what a worker killed at the wrong moment left undone in running workflows —
    a success not yet counted in its children, steps claimed but never sent. Returns how many steps."""
    before = timezone.now() - WORKFLOW_REPAIR_AFTER
    running = WorkflowStep.objects.filter(workflow__state=Workflow.State.RUNNING)
    done = TaskResult.objects.filter(status=states.SUCCESS, date_done__lt=before).values("task_id")
    uncounted = list(running.filter(counted=False, task_id__in=done).values_list("pk", "task_id"))
    for step_id, task_id in uncounted:
        workflow_step_succeeded(step_id=step_id, task_id=task_id)
    pending = TaskResult.objects.filter(status=states.PENDING).values("task_id")
    # A failed workflow's steps claimed before it failed were due to run, as its running ones do.
    claimed = WorkflowStep.objects.filter(workflow__state__in=[Workflow.State.RUNNING, Workflow.State.FAILURE])
    unsent = list(claimed.filter(sent_at__isnull=True, sending_at__lt=before, task_id__in=pending))
    try:
        _workflow_steps_send(unsent)
    except OperationalError as exc:
        logger.warning("Workflow steps still not sent: %s", exc)
    return len(uncounted) + len(unsent)
