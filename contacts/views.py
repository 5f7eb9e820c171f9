"""The import page and the refused rows' download."""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from jobs.exceptions import JobLaunchError
from jobs.models import JobRecord
from jobs.throttling import launch_wait, too_many

from . import selectors, services
from .forms import ContactImportForm
from .uploads import upload_refused


@login_required
def import_list(request):
    """Upload a CSV of contacts; see earlier uploads and how they went."""
    # Counted first, whatever the upload turns out to be.
    wait = launch_wait(request) if request.method == "POST" else None
    form = ContactImportForm(request.POST or None, request.FILES or None)
    if refused := upload_refused(request):
        form.is_valid()
        form.errors["file"] = form.error_class([refused])  # not "required": it was sent, and too large
        return render(request, "contacts/import_list.html", {"form": form, "imports": _imports(request)}, status=413)
    if wait is not None:
        form.add_error(None, too_many(wait))
    elif request.method == "POST" and form.is_valid():
        try:
            contact_import = services.contact_import_create(
                upload=form.cleaned_data["file"], user=request.user, origin=JobRecord.Origin.PAGE
            )
        except services.ImportRefused as exc:
            form.add_error("file", str(exc))
        except JobLaunchError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("jobs:workflow", contact_import.workflow_id)
    return render(request, "contacts/import_list.html", {"form": form, "imports": _imports(request)})


def _imports(request):
    return selectors.imports_visible_to(user=request.user)[:50]


@login_required
def import_errors(request, import_id: int):
    """The rows an import refused, as CSV: line, reason, the row as uploaded."""
    contact_import = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=import_id)
    response = HttpResponse(services.import_errors_csv(contact_import), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{import_id}-errors.csv"'
    return response


@login_required
def contact_list(request):
    """The contacts your imports wrote (with the view permission: everyone's), 100 a page."""
    page = Paginator(selectors.contacts_visible_to(user=request.user), 100).get_page(request.GET.get("page"))
    return render(request, "contacts/contact_list.html", {"page": page})
