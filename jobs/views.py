"""Pages for the people who launch jobs: their jobs, a form to launch one, a job's live page."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import contacts, selectors, services, signup
from .catalog import InvalidArguments, UnknownJob, catalog, find_job
from .forms import ContactImportForm, SignupForm, arguments_form_class
from .models import JobRecord, Report
from .throttling import launch_wait, too_many

def _visible_job(request, job_id: str):
    record = selectors.job_get(job_id=job_id, user=request.user)
    if record is None:
        raise Http404("No such job, or not yours.")
    return record


@login_required
def job_list(request):
    """The signed-in user's jobs (staff: everyone's), newest first, filtered by status and job."""
    status, task = request.GET.get("status", ""), request.GET.get("task", "")
    page = int(request.GET["page"]) if request.GET.get("page", "").isdigit() and int(request.GET["page"]) > 0 else 1
    rows, has_next = selectors.jobs_page(user=request.user, status=status, task=task, page=page)
    return render(request, "jobs/job_list.html", {
        "jobs": [selectors.job_details(record) for record in rows],
        "statuses": selectors.STATES, "tasks": list(catalog()), "status": status, "task": task,
        "page": page, "has_next": has_next,
    })


@login_required
def job_new(request):
    """Pick a job, fill in its arguments (a form built from its types), launch it."""
    name = request.POST.get("job") or request.GET.get("job")
    if not name:
        return render(request, "jobs/job_new.html", {"jobs": catalog(request.user).values()})
    try:
        job = find_job(name, user=request.user)
    except UnknownJob as exc:
        messages.error(request, str(exc))
        return redirect("jobs:new")
    form = arguments_form_class(job)(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if (wait := launch_wait(request)) is not None:
            form.add_error(None, too_many(wait))
            return render(request, "jobs/job_new.html", {"job": job, "form": form}, status=429)
        try:
            record = services.job_launch(
                name=job.name, kwargs=form.cleaned_data, launched_by=request.user, origin=JobRecord.Origin.PAGE
            )
        except InvalidArguments as exc:
            for error in exc.errors:
                form.add_error(error["field"] if error["field"] in form.fields else None, error["message"])
        except services.JobQueueUnavailable as exc:
            form.add_error(None, f"{exc} Try again shortly.")
        else:
            return redirect("jobs:detail", record.task_id)
    return render(request, "jobs/job_new.html", {"job": job, "form": form})


@login_required
def job_detail(request, job_id: str):
    """A job's status, live progress, result or error, timings and history."""
    record = _visible_job(request, job_id)
    job = selectors.job_details(record)
    return render(request, "jobs/job_detail.html", {
        "job": job,
        "can_retry": request.user.has_perm("jobs.retry_job") and hasattr(record, "job"),
        "can_cancel": request.user.has_perm("jobs.cancel_job") and job["done_at"] is None and hasattr(record, "job"),
    })


@login_required
@require_POST
def job_retry(request, job_id: str):
    """Launch the job again with the same arguments (needs the 'Can retry jobs' permission)."""
    if not request.user.has_perm("jobs.retry_job"):
        raise PermissionDenied
    record = _visible_job(request, job_id)
    try:
        retried = services.job_retry(record=record.job, user=request.user)
    except (UnknownJob, InvalidArguments, services.JobQueueUnavailable) as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect("jobs:detail", record.task_id)
    messages.success(request, f"Retrying job {record.task_id} as {retried.task_id}.")
    return redirect("jobs:detail", retried.task_id)


@login_required
def job_cancel(request, job_id: str):
    """Confirm, then cancel the job (needs the 'Can cancel jobs' permission)."""
    if not request.user.has_perm("jobs.cancel_job"):
        raise PermissionDenied
    record = _visible_job(request, job_id)
    if request.method == "POST":
        try:
            services.job_cancel(record=record.job, user=request.user)
            messages.success(request, f"Cancelled job {record.task_id}.")
        except services.JobNotCancellable as exc:
            messages.error(request, str(exc))
        return redirect("jobs:detail", record.task_id)
    return render(request, "jobs/job_cancel.html", {"job": selectors.job_details(record)})


def signup_view(request):
    """Create an inactive account; the activation email goes out from a worker."""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if (wait := launch_wait(request)) is not None:  # each sign-up sends an email
            form.add_error(None, too_many(wait))
            return render(request, "registration/signup.html", {"form": form}, status=429)
        user = signup.user_register(
            username=form.cleaned_data["username"], email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        return render(request, "registration/signup_done.html", {"email": user.email})
    return render(request, "registration/signup.html", {"form": form})


def activate_view(request, token: str):
    """Open the link from the activation email."""
    try:
        signup.user_activate(token=token)
    except signup.ActivationFailed as exc:
        messages.error(request, str(exc))
        return redirect("signup")
    messages.success(request, "Your account is active. Sign in.")
    return redirect("login")


@login_required
def import_list(request):
    """Upload a CSV of contacts; see earlier uploads and how they went."""
    form = ContactImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid() and (wait := launch_wait(request)) is not None:
        form.add_error(None, too_many(wait))
    elif request.method == "POST" and form.is_valid():
        try:
            contact_import = contacts.contact_import_create(
                upload=form.cleaned_data["file"], user=request.user, origin=JobRecord.Origin.PAGE
            )
        except contacts.ImportRefused as exc:
            form.add_error("file", str(exc))
        except services.JobQueueUnavailable as exc:
            form.add_error(None, f"{exc} Try again shortly.")
        else:
            return redirect("jobs:detail", contact_import.task_id)
    imports = selectors.imports_visible_to(user=request.user)
    return render(request, "jobs/import_list.html", {"form": form, "imports": imports[:50]})


@login_required
def import_errors(request, import_id: int):
    """The rows an import refused, as CSV: line, reason, the row as uploaded."""
    imports = selectors.imports_visible_to(user=request.user)
    contact_import = get_object_or_404(imports, pk=import_id)
    response = HttpResponse(contacts.import_errors_csv(contact_import), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{import_id}-errors.csv"'
    return response


@login_required
def report_download(request, report_id: int):
    """A generated report (staff only: it covers everyone's jobs)."""
    if not request.user.is_staff:
        raise PermissionDenied
    report = get_object_or_404(Report, pk=report_id)
    return FileResponse(report.file.open("rb"), as_attachment=True, filename=report.file.name.rsplit("/", 1)[-1])
