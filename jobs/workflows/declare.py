"""``@workflow``: a workflow declared in code, under a stable name, as a catalog job."""
import functools

from celery import current_task

from ..catalog import Unique, job
from . import services
from .specs import WorkflowTask


def workflow(name: str, restricted: bool = False, unique: Unique | bool | None = None, **task_options):
    """Declare a workflow under a stable name: the decorated function takes the workflow's typed
    arguments and returns its spec. It is a catalog job: launched from the pages, the API or a
    schedule, it launches the workflow and returns the workflow's id.

    `unique` (a Unique whose `until` is "finished", or True) runs at most one workflow per key at a time:
    a launch while one runs answers with it, whether launched as a job or through /api/workflows/."""
    unique = Unique() if unique is True else unique or None
    if unique is not None and unique.until != "finished":
        raise ValueError(f"Workflow {name}: unique workflows hold their key while they run (until='finished'), "
                         f"not {unique.until!r}.")

    def declare(build):
        @functools.wraps(build)
        def launch(*args, **kwargs) -> str:
            task = current_task
            key = unique.key(name, task.json_arguments(args, kwargs)) if unique else None
            return services.workflow_launch_from_job(name=name, spec=build(*args, **kwargs),
                                                     launcher_id=task.request.id, unique_key=key).id

        launch.__annotations__ = {**build.__annotations__, "return": str}
        return job(name, restricted=restricted, unique=unique, base=WorkflowTask, build=staticmethod(build),
                   **task_options)(launch)

    return declare
