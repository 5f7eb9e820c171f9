"""Reads of workflows: who sees them, their graph, steps and counts."""
from typing import Any

from celery import states
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet
from django_celery_results.models import TaskResult

from ..records.selectors import is_uuid, sees_every_job
from .models import Workflow, WorkflowStep


def workflows_visible_to(*, user: AbstractBaseUser) -> QuerySet[Workflow]:
    """Newest first: every workflow for those who see every job, else those `user` launched."""
    flows = Workflow.objects.select_related("launched_by")
    return flows if sees_every_job(user) else flows.filter(launched_by=user)


def workflow_get(*, workflow_id: str, user: AbstractBaseUser) -> Workflow | None:
    """The workflow with id `workflow_id` if `user` may see it, else None."""
    if not is_uuid(workflow_id):
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
