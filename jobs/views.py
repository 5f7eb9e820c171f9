"""Pages for the people who launch jobs: their jobs, a form to launch one, a job's live page; and
the Prometheus endpoint, for the tools operators run."""
import hmac
import ipaddress
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from . import selectors, services
from .api import job_out
from .catalog import catalog, find_job
from .exceptions import InvalidArguments, JobLaunchError, JobNotCancellable
from .forms import arguments_form_class
from .graphs import graph_draw
from .metrics import JobsCollector
from .models import JobRecord, Workflow
from .throttling import client_address, launch_wait, too_many

WHO_MAY_ACT = ("Whoever launched a job may retry or cancel it; on anyone else's, that takes the 'Can retry jobs' "
               "or 'Can cancel jobs' permission.")


def _visible_job(request, job_id: str):
    result = selectors.job_get(job_id=job_id, user=request.user)
    if result is None:
        raise Http404("No such job, or not yours.")
    return result


JOB_LIST_LIVE_SECONDS = 5  # how often the jobs list refreshes itself while its tab is visible


@login_required
def job_list(request):
    """The signed-in user's jobs (staff: everyone's), newest first, filtered by status and job."""
    status, task, page = request.GET.get("status", ""), request.GET.get("task", ""), request.GET.get("page", "1")
    workflow = request.GET.get("workflow", "")
    rows, has_next, http_status = [], False, 200
    try:
        page = int(page) if page.isascii() and page.isdigit() else 0
        rows, has_next = selectors.jobs_page(user=request.user, status=status, task=task, workflow=workflow,
                                             page=page)
    except selectors.InvalidFilter as exc:
        messages.error(request, str(exc))
        workflow = ""
        http_status = 400
    sees_everyone = selectors.sees_every_job(request.user)
    return render(request, "jobs/job_list.html", {
        "jobs": [selectors.job_details(result) for result in rows], "statuses": selectors.STATES,
        # Someone who sees only their own jobs is offered the jobs they may launch, not the system's.
        "tasks": list(catalog() if sees_everyone else catalog(request.user)), "status": status, "task": task,
        "workflow": workflow, "page": page, "has_next": has_next, "sees_everyone": sees_everyone,
        "live_seconds": JOB_LIST_LIVE_SECONDS,
    }, status=http_status)


@login_required
def job_new(request):
    """Pick a job, fill in its arguments (a form built from its types), launch it."""
    name = request.POST.get("job") or request.GET.get("job")
    if not name:
        return render(request, "jobs/job_new.html", {"tasks": catalog(request.user).values()})
    try:
        task = find_job(name, user=request.user)
    except JobLaunchError as exc:
        messages.error(request, str(exc))
        return redirect("jobs:new")
    form = arguments_form_class(task)(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if (wait := launch_wait(request)) is not None:
            form.add_error(None, too_many(wait))
            return render(request, "jobs/job_new.html", {"task": task, "form": form}, status=429)
        try:
            # As JSON carries them (dates as ISO text), which is what the catalog validates.
            arguments = json.loads(DjangoJSONEncoder().encode(form.cleaned_data))
            result = services.job_launch(
                name=task.name, kwargs=arguments, launched_by=request.user, origin=JobRecord.Origin.PAGE
            )
        except InvalidArguments as exc:
            for error in exc.errors:
                form.add_error(error["field"] if error["field"] in form.fields else None, error["message"])
        except JobLaunchError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("jobs:detail", result.task_id)
    return render(request, "jobs/job_new.html", {"task": task, "form": form})


@login_required
def job_detail(request, job_id: str):
    """A job's status, live progress, result or error, timings and history."""
    result = _visible_job(request, job_id)
    # Exactly what GET /api/jobs/<id>/ answers, which the page's script keeps showing: the same
    # timestamps (ISO 8601) and the same JSON before and after it takes over.
    job = json.loads(DjangoJSONEncoder().encode(job_out(request, result)))
    return render(request, "jobs/job_detail.html", {
        "job": job,
        "result_json": "" if job["result"] is None else json.dumps(job["result"], indent=2, ensure_ascii=False),
        "arguments_json": json.dumps(job["arguments"], ensure_ascii=False) if job["arguments"] is not None else "",
        "may_retry": selectors.may_act_on(request.user, result, "jobs.retry_job"),
        "retry_refusal": selectors.job_retry_refusal(result),
        "can_cancel": selectors.may_act_on(request.user, result, "jobs.cancel_job") and job["done_at"] is None,
        "who_may_act": WHO_MAY_ACT,
        "launched_workflow": Workflow.objects.filter(launcher_id=result.pk).values_list("pk", flat=True).first(),
    })


def _job_to_act_on(request, job_id: str, permission: str):
    result = _visible_job(request, job_id)
    if not selectors.may_act_on(request.user, result, permission):
        raise PermissionDenied(WHO_MAY_ACT)
    return result


@login_required
@require_POST
def job_retry(request, job_id: str):
    """Launch the job again with the same arguments (your own jobs, or with 'Can retry jobs')."""
    result = _job_to_act_on(request, job_id, "jobs.retry_job")
    if (wait := launch_wait(request)) is not None:  # a retry is a launch
        messages.error(request, f"Not retried: {too_many(wait)}")
        return redirect("jobs:detail", result.task_id)
    try:
        retried = services.job_retry(result=result, user=request.user)
    except JobLaunchError as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect("jobs:detail", result.task_id)
    messages.success(request, f"Retrying job {result.task_id} as {retried.task_id}.")
    return redirect("jobs:detail", retried.task_id)


@login_required
def job_cancel(request, job_id: str):
    """Confirm, then cancel the job (your own jobs, or with 'Can cancel jobs')."""
    result = _job_to_act_on(request, job_id, "jobs.cancel_job")
    if request.method == "POST":
        try:
            services.job_cancel(result=result, user=request.user)
            messages.success(request, f"Cancelled job {result.task_id}.")
        except JobNotCancellable as exc:
            messages.error(request, str(exc))
        return redirect("jobs:detail", result.task_id)
    return render(request, "jobs/job_cancel.html", {"job": selectors.job_details(result)})


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


metrics_registry = CollectorRegistry(auto_describe=False)
metrics_registry.register(JobsCollector())


def _may_scrape(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        # Behind a proxy on the same host every connection comes from loopback: the client's address decides.
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request):
    """Prometheus' scrape: with METRICS_TOKEN as a bearer token, or from METRICS_ALLOWED_NETWORKS."""
    if not _may_scrape(request):
        return HttpResponse("Metrics need `Authorization: Bearer <METRICS_TOKEN>` or an address in "
                            "METRICS_ALLOWED_NETWORKS.\n", status=403, content_type="text/plain")
    try:
        body = generate_latest(metrics_registry)
    except DatabaseError as exc:
        return HttpResponse(f"The database is unavailable: {exc}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
