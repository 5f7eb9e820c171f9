"""Signal receivers of workflows, connected in JobsConfig.ready(): a step's outcome, on the worker
that ran it, moves its workflow on."""
from celery import states

from . import services


def job_succeeded(sender, **kwargs) -> None:
    """task_success (on the worker, its result stored): a workflow's step sends what follows it."""
    step_id = getattr(sender.request, services.WORKFLOW_STEP_HEADER, None)
    if step_id is not None:
        services.workflow_step_succeeded(step_id=step_id, task_id=sender.request.id)


def job_failed(sender, task_id: str, exception: BaseException, **kwargs) -> None:
    """task_failure (on the worker, for good): a workflow's step fails its workflow."""
    step_id = getattr(sender.request, services.WORKFLOW_STEP_HEADER, None)
    if step_id is not None:
        services.workflow_step_failed(step_id=step_id, task_id=task_id,
                                      error=f"failed: {type(exception).__name__}: {exception}")


def settled_job_delivered(sender, task, settled: str, **kwargs) -> None:
    """A step delivered again whose worker died after storing its success: pass it on now."""
    step_id = getattr(task.request, services.WORKFLOW_STEP_HEADER, None)
    if settled == states.SUCCESS and step_id is not None:
        services.workflow_step_succeeded(step_id=step_id, task_id=task.request.id)
