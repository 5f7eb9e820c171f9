"""The workflows' JSON API: launch a workflow, read it, cancel it."""
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Body, Router, Schema
from pydantic import Field

from ..exceptions import InvalidWorkflow, JobNotCancellable
from ..http import error, errors
from ..records.models import JobRecord
from ..throttling import JobLaunchThrottle, workflow_admit
from . import selectors, services

router = Router(tags=["workflows"])


class StepOut(Schema):
    id: int
    position: int = Field(description="Its place in the spec, from 0.")
    path: str = Field(description="Where it is in the spec, e.g. chord.header[3].")
    job: str
    job_id: str = Field(description="Its job's id (the latest attempt): GET /api/jobs/<id>/.")
    status: str
    parents: list[int | str] = Field(description="The steps it follows ('more-N': steps not listed, of layer N).")


class WorkflowOut(Schema):
    id: str
    name: str = Field(description="The declared workflow's name, or the one code gave it; empty for one launched as a spec.")
    state: str = Field(description="RUNNING, SUCCESS, FAILURE or REVOKED.")
    url: str
    page: str = Field(description="Its page, with the live graph.")
    steps_total: int
    steps_done: int
    counts: dict[str, int] = Field(description="Its steps by their jobs' states.")
    result: Any = Field(description="The last step's result (a list when several end it), once it succeeded.")
    error: str = Field(description="Which step failed, and why.")
    launched_by: str | None
    origin: str
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepOut] = Field(description="Its steps, the first 20 of each layer of the graph.")


def workflow_out(request: HttpRequest, flow) -> dict[str, Any]:
    return {**selectors.workflow_details(flow),
            "url": request.build_absolute_uri(reverse("api:workflow_detail", args=[flow.id])),
            "page": request.build_absolute_uri(reverse("jobs:workflow", args=[flow.id]))}


WORKFLOW_BODY = """A spec: {"chain": [nodes]}, {"group": [nodes]}, {"chord": {"header": [nodes], "body": node}} or a
step {"job": "<name>", "kwargs": {...}, "input": "<parameter given the previous result>"}; or a declared
workflow: {"workflow": "<name>", "kwargs": {...}}."""


@router.post("/", response={201: WorkflowOut, 200: WorkflowOut, **errors(403, 413, 422, 429, 503)},
             url_name="workflow_create", throttle=[JobLaunchThrottle()],
             openapi_extra={"requestBody": {"description": WORKFLOW_BODY,
                                            "content": {"application/json": {"schema": {"type": "object"}}}}})
def workflow_create(request, payload: Body[dict[str, Any]], response: HttpResponse):
    """Launch a workflow: every step is checked and recorded PENDING before this answers: 201. A unique declared
    workflow (@workflow(unique=...)) already running with the same key is not launched again: 200 with it."""
    if "workflow" in payload:
        extra = sorted(set(payload) - {"workflow", "kwargs"})
        if extra or not isinstance(payload["workflow"], str) or not isinstance(payload.get("kwargs", {}), dict):
            raise InvalidWorkflow([{"field": "workflow", "message": 'a declared workflow is launched as {"workflow": '
                                    '"<name>", "kwargs": {...}}' + (f"; unexpected: {', '.join(extra)}" if extra else "")}])
        flow = services.workflow_launch_declared(name=payload["workflow"], kwargs=payload.get("kwargs", {}),
                                                 launched_by=request.user, origin=JobRecord.Origin.API,
                                                 admit=workflow_admit(request))
    else:
        flow = services.workflow_launch(spec=payload, launched_by=request.user, origin=JobRecord.Origin.API,
                                        admit=workflow_admit(request))
    body = workflow_out(request, flow)
    response["Location"] = body["url"]
    return 201 if flow.launched else 200, body


@router.get("/{workflow_id}/", response={200: WorkflowOut, **errors(404)}, url_name="workflow_detail")
def workflow_detail(request, workflow_id: str):
    """A workflow's state, progress by step and result. Only your own, unless staff."""
    flow = selectors.workflow_get(workflow_id=workflow_id, user=request.user)
    if flow is None:
        return error(request, 404, f"No workflow with id {workflow_id!r}.")
    return workflow_out(request, flow)


@router.post("/{workflow_id}/cancel/", response={200: WorkflowOut, **errors(403, 404, 409)},
                      url_name="workflow_cancel")
def workflow_cancel(request, workflow_id: str):
    """Cancel a workflow: queued steps never start, running ones stop. Your own, or with 'Can cancel jobs'."""
    flow = selectors.workflow_get(workflow_id=workflow_id, user=request.user)
    if flow is None:
        return error(request, 404, f"No workflow with id {workflow_id!r}.")
    if not selectors.may_act_on_workflow(request.user, flow, "jobs.cancel_job"):
        return error(request, 403, "Only whoever launched a workflow, or someone with 'Can cancel jobs', may cancel it.")
    try:
        services.workflow_cancel(workflow=flow, user=request.user)
    except JobNotCancellable as exc:
        return error(request, 409, str(exc))
    flow.refresh_from_db()
    return workflow_out(request, flow)
