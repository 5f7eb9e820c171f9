"""``@workflow``: a workflow declared in code, under a stable name, as a catalog job."""
import functools

from celery import current_task

from ..catalog import job
from . import services
from .specs import WorkflowTask


def workflow(name: str, restricted: bool = False, **task_options):
    """Declare a workflow under a stable name: the decorated function takes the workflow's typed
    arguments and returns its spec. It is a catalog job: launched from the pages, the API or a
    schedule, it launches the workflow and returns the workflow's id."""

    def declare(build):
        @functools.wraps(build)
        def launch(*args, **kwargs) -> str:

            return services.workflow_launch_from_job(name=name, spec=build(*args, **kwargs),
                                                     launcher_id=current_task.request.id).id

        launch.__annotations__ = {**build.__annotations__, "return": str}
        return job(name, restricted=restricted, base=WorkflowTask, build=staticmethod(build), **task_options)(launch)

    return declare
