"""Pages for the people who launch jobs: their jobs, a form to launch one, a job's live page, retry
and cancel."""
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..catalog import catalog, find_job
from ..exceptions import InvalidArguments, JobLaunchError, JobNotCancellable
from ..records.models import JobRecord
from ..records.selectors import STATES, WHO_MAY_ACT, may_act_on, sees_every_job
from ..throttling import launch_wait, too_many
from ..workflows.models import Workflow
from . import selectors, services
from .api import job_out
from .forms import arguments_form_class


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
    sees_everyone = sees_every_job(request.user)
    return render(request, "jobs/job_list.html", {
        "jobs": [selectors.job_details(result) for result in rows], "statuses": STATES,
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
            if not result.launched:
                messages.info(request, f"{task.name} is a unique job, and an identical one holds its key: this is "
                                       "that job. Nothing new was launched.")
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
        "may_retry": may_act_on(request.user, result, "jobs.retry_job"),
        "retry_refusal": selectors.job_retry_refusal(result),
        "can_cancel": may_act_on(request.user, result, "jobs.cancel_job") and job["done_at"] is None,
        "who_may_act": WHO_MAY_ACT,
        "launched_workflow": Workflow.objects.filter(launcher_id=result.pk).values_list("pk", flat=True).first(),
    })


def _job_to_act_on(request, job_id: str, permission: str):
    result = _visible_job(request, job_id)
    if not may_act_on(request.user, result, permission):
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


