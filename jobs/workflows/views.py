"""The workflow pages: a workflow's graph and steps, and its cancellation."""
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render

from ..exceptions import JobNotCancellable
from ..records.selectors import WHO_MAY_ACT
from . import selectors, services
from .graphs import graph_draw


def _visible_workflow(request, workflow_id: str):
    flow = selectors.workflow_get(workflow_id=workflow_id, user=request.user)
    if flow is None:
        raise Http404("No such workflow, or not yours.")
    return flow


def workflow_context(flow) -> dict:
    """What the workflow's graph partial shows (its page and its admin page)."""
    graph = selectors.workflow_graph(flow)
    return {"flow": flow, "graph": graph, "drawing": graph_draw(graph), "live": flow.state == flow.State.RUNNING,
            "result_json": json.dumps(flow.result, indent=2, ensure_ascii=False)}


@login_required
def workflow_detail(request, workflow_id: str):
    """A workflow's live graph, progress and result; cancel it, retry its failed steps."""
    flow = _visible_workflow(request, workflow_id)
    return render(request, "jobs/workflow_detail.html", {
        **workflow_context(flow),
        "failed": selectors.workflow_failed_steps(flow) if flow.state == flow.State.FAILURE else [],
        "can_retry": selectors.may_act_on_workflow(request.user, flow, "jobs.retry_job"),
        "can_cancel": flow.state in (flow.State.RUNNING, flow.State.FAILURE)
        and selectors.may_act_on_workflow(request.user, flow, "jobs.cancel_job"),
    })


@login_required
def workflow_cancel(request, workflow_id: str):
    """Confirm, with what it will stop, then cancel the workflow (your own, or with 'Can cancel jobs')."""
    flow = _visible_workflow(request, workflow_id)
    if not selectors.may_act_on_workflow(request.user, flow, "jobs.cancel_job"):
        raise PermissionDenied(WHO_MAY_ACT)
    if request.method == "POST":
        try:
            cancelled = services.workflow_cancel(workflow=flow, user=request.user)
            messages.success(request, f"Cancelled workflow {flow.id}: {cancelled} steps will not run.")
        except JobNotCancellable as exc:
            messages.error(request, str(exc))
        return redirect("jobs:workflow", flow.id)
    return render(request, "jobs/workflow_cancel.html", {"flow": flow, "counts": selectors.workflow_unfinished(flow)})
