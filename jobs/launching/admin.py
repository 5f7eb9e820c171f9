"""The job results admin: every job from the moment it is queued, retry and cancel, fast at scale.

Stock django-celery-results' admin counts the whole table on every page, lists filter choices
with table-wide DISTINCTs, and searches arguments with LIKE over every row. Here: filter choices
come from the catalog, the configured queues, the periodic-task table and the latest results;
search is by exact id or job name (both indexed); the page count is exact up to 10,000 rows and
the planner's estimate beyond.
"""
from celery import states
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_celery_results.models import TaskResult

from ..exceptions import JobLaunchError, JobNotCancellable
from ..records.models import JobRecord, UniqueKey
from ..records.selectors import job_outcome, job_progress
from ..throttling import launch_wait, too_many
from . import selectors, services
from .filters import JobFilter, PeriodicTaskFilter, QueueFilter, StatusFilter, WorkerFilter, WorkflowFilter
from .paginator import EstimatingPaginator


class TaskResultAdmin(admin.ModelAdmin):
    # The periodic task is the "launched by" of a scheduled job: one column less, so the list fits 1280 px.
    list_display = ["job_id", "task_name", "status", "queue", "worker", "created", "done", "launched_by"]
    list_display_links = ["job_id"]
    list_filter = [StatusFilter, JobFilter, QueueFilter, WorkerFilter, PeriodicTaskFilter, WorkflowFilter, "date_created"]
    list_select_related = ["record__launched_by"]
    list_per_page = 100
    paginator = EstimatingPaginator
    show_full_result_count = False
    search_fields = ["task_id"]  # shows the search box; get_search_results does the searching
    search_help_text = ("A job id or its first characters (as logs show it), a job name such as jobs.add, "
                        "or text in arguments or in failed jobs' errors.")
    ordering = ["-date_created"]
    actions = ["retry_jobs", "cancel_jobs"]
    change_form_template = "admin/jobs/taskresult_change_form.html"
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "status", "progress", "outcome", "arguments")}),
        ("Timings", {"fields": ("date_created", "date_started", "done", "durations")}),
        ("Origin", {"fields": ("launched_by", "origin", "periodic_task_name", "queue", "worker",
                               "attempt", "retry_chain", "audit")}),
        ("Raw", {"fields": ("task_args", "task_kwargs", "result", "traceback", "meta"), "classes": ("collapse",)}),
    )

    @admin.display(description="job", ordering="task_id")
    def job_id(self, obj):
        """The id's first 8 characters, as logs and the search box take it (the whole id on hover): the
        full id would push the list's last columns off a 1280 px screen."""
        return format_html('<code title="{}">{}</code>', obj.task_id, obj.task_id[:8])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        result = self.get_object(request, object_id)
        refusal = selectors.job_retry_refusal(result) if result is not None and hasattr(result, "record") else None
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "retry_refusal": refusal})

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def get_search_results(self, request, queryset, search_term):
        return selectors.jobs_search(queryset, search_term.strip()), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # results are what the workers recorded

    def has_retry_permission(self, request):
        return request.user.has_perm("jobs.retry_job")

    def has_cancel_permission(self, request):
        return request.user.has_perm("jobs.cancel_job")

    @admin.display(description="done", ordering="date_done")
    def done(self, obj):
        """When the job ended; nothing while it is queued or running (the row's date_done is the
        time of its latest state then, which django-celery-results labels "Completed")."""
        return obj.date_done if obj.status in states.READY_STATES else None

    @admin.display(description="queue")
    def queue(self, obj):
        return getattr(getattr(obj, "record", None), "queue", "")

    @admin.display(description="launched by")
    def launched_by(self, obj):
        """Who launched it, or the periodic task that did."""
        if obj.periodic_task_name:
            return f"schedule “{obj.periodic_task_name}”"
        record = getattr(obj, "record", None)
        return (record.launched_by or record.get_origin_display()) if record else ""

    @admin.display(description="queued", ordering="date_created")
    def created(self, obj):
        return obj.date_created

    @admin.display(description="origin")
    def origin(self, obj):
        record = getattr(obj, "record", None)
        return record.get_origin_display() if record else "not recorded at launch"

    @admin.display(description="progress")
    def progress(self, obj):
        progress = job_progress(obj)
        if progress["percent"] is None:
            return "-"
        return format_html('<progress max="100" value="{}"></progress> {}% {}',
                           progress["percent"], progress["percent"], progress["message"])

    @admin.display(description="result or error")
    def outcome(self, obj):
        result, error = job_outcome(obj)
        return error or ("-" if result is None else result)

    @admin.display(description="arguments")
    def arguments(self, obj):
        record = getattr(obj, "record", None)
        return record.arguments if record else f"{obj.task_args} {obj.task_kwargs}"

    @admin.display(description="queued → started → done")
    def durations(self, obj):
        if not obj.date_started:
            return "-"
        record = getattr(obj, "record", None)
        since_queued = (obj.date_started - obj.date_created).total_seconds()
        if record and record.attempts > 1:
            # date_started is the latest attempt's start: the time before it is not all queue wait.
            parts = [f"attempt {record.attempts} started {since_queued:.3f} s after it was queued"]
        else:
            parts = [f"waited {since_queued:.3f} s"]
        if obj.date_done and obj.status in states.READY_STATES:
            parts.append(f"ran {(obj.date_done - obj.date_started).total_seconds():.3f} s")
        return ", ".join(parts)

    @admin.display(description="attempt")
    def attempt(self, obj):
        record = getattr(obj, "record", None)
        if not record:
            return "-"
        return f"{record.attempts} (last error: {record.last_error})" if record.last_error else record.attempts

    @admin.display(description="retries")
    def retry_chain(self, obj):
        record = getattr(obj, "record", None)
        if not record:
            return "-"
        links = []
        if record.retry_of:
            links.append(("retry of", self._link(record.retry_of.result), ""))
        links.extend(("retried as", self._link(retry.result), "") for retry in record.retried_as.select_related("result"))
        return format_html_join(mark_safe("<br>"), "{} {}{}", links) if links else "-"

    @admin.display(description="retries and cancellations")
    def audit(self, obj):
        record = getattr(obj, "record", None)
        actions = record.actions.select_related("actor", "record__result") if record else []
        return format_html_join(mark_safe("<br>"), "{}", ((str(action),) for action in actions)) or "-"

    def _link(self, result):
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return format_html('<a href="{}">{}</a>', url, result.task_id)

    def get_urls(self):
        return [
            path("<int:object_id>/retry/", self.admin_site.admin_view(self.retry_view),
                 name="django_celery_results_taskresult_retry"),
            path("<int:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name="django_celery_results_taskresult_cancel"),
        ] + super().get_urls()

    def _confirm(self, request, *, action: str, verb: str, chosen, skipped: dict[str, int], explanation: str):
        """The page that asks before a bulk action: how many jobs it will touch, how many it skips
        and why; posting it again (with confirm) runs the action on the same selection or filter."""
        count = chosen.count()
        return TemplateResponse(request, "admin/jobs/taskresult_bulk_confirm.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": f"{verb} {count} job{'s' if count != 1 else ''}?", "count": count, "examples": chosen[:20],
            "skipped": {reason: number for reason, number in skipped.items() if number},
            "explanation": explanation, "action": action, "verb": verb,
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        })

    def _retry_plan(self, queryset):
        """The jobs of `queryset` a bulk retry launches again, and how many it skips, by reason."""
        queryset = queryset.annotate(retried=Exists(JobRecord.objects.filter(retry_of=OuterRef("pk"))))
        recorded = queryset.filter(record__isnull=False)
        ended = recorded.filter(status__in=states.READY_STATES)
        return ended.filter(retried=False).order_by("pk"), {
            "retried already": ended.filter(retried=True).count(),
            "not finished (a retry would run it twice)": recorded.exclude(status__in=states.READY_STATES).count(),
            "not recorded at launch (no arguments kept)": queryset.filter(record__isnull=True).count(),
        }

    @admin.action(description="Retry selected jobs (same arguments); “select all” retries all the filter matches",
                  permissions=["retry"])
    def retry_jobs(self, request, queryset):
        chosen, skipped = self._retry_plan(queryset)
        if "confirm" not in request.POST:
            return self._confirm(request, action="retry_jobs", verb="Retry", chosen=chosen, skipped=skipped,
                                 explanation="Each is launched again with its arguments, as a new job linked to it.")
        if (wait := launch_wait(request)) is not None:  # a retry is a launch, whoever asks
            self.message_user(request, f"Nothing retried: {too_many(wait)}", messages.ERROR)
            return None
        retried, failed = self._each(request, chosen, lambda result: services.job_retry(result=result, user=request.user),
                                     JobLaunchError)
        self._report(request, "Retried", retried, failed, skipped)
        return None

    def _cancel_plan(self, queryset):
        recorded = queryset.filter(record__isnull=False)
        return recorded.exclude(status__in=states.READY_STATES).order_by("pk"), {
            "ended already": recorded.filter(status__in=states.READY_STATES).count(),
            "not recorded at launch": queryset.filter(record__isnull=True).count(),
        }

    @admin.action(description="Cancel selected jobs; “select all” cancels all the filter matches", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        chosen, skipped = self._cancel_plan(queryset)
        if "confirm" not in request.POST:
            return self._confirm(request, action="cancel_jobs", verb="Cancel", chosen=chosen, skipped=skipped,
                                 explanation="Queued jobs will not start. Running jobs are stopped mid-way (their "
                                             "worker process gets SIGTERM); what they already did is not undone.")
        cancelled, failed = self._each(request, chosen, lambda result: services.job_cancel(result=result, user=request.user),
                                       JobNotCancellable)
        self._report(request, "Cancelled", cancelled, failed, skipped)
        return None

    def _each(self, request, chosen, act, expected_error) -> tuple[int, int]:
        """Apply `act` to each chosen job (read in batches); errors it expects are reported per job."""
        done = failed = 0
        for result in chosen.select_related("record").iterator(chunk_size=500):
            try:
                act(result)
                done += 1
            except expected_error as exc:
                failed += 1
                if failed <= 10:
                    self.message_user(request, f"{result.task_id}: {exc}", messages.WARNING)
        return done, failed

    def _report(self, request, verb: str, done: int, failed: int, skipped: dict[str, int]):
        parts = [f"{verb} {done} job{'s' if done != 1 else ''}."]
        parts += [f"Skipped {count}: {reason}." for reason, count in skipped.items() if count]
        if failed:
            parts.append(f"{failed} could not be: see above.")
        self.message_user(request, " ".join(parts), messages.SUCCESS if done else messages.WARNING)

    def retry_view(self, request, object_id):
        """The Retry button of a job's page: that job, at once (the button is the confirmation)."""
        if request.method != "POST" or not self.has_retry_permission(request):
            raise PermissionDenied
        result = get_object_or_404(TaskResult.objects.select_related("record"), pk=object_id)
        retried_as = JobRecord.objects.filter(retry_of_id=result.pk).select_related("result").first()
        if (wait := launch_wait(request)) is not None:
            self.message_user(request, f"Not retried: {too_many(wait)}", messages.ERROR)
        elif not hasattr(result, "record"):
            self.message_user(request, "Not retried: this job was not recorded at launch (no arguments kept).",
                              messages.WARNING)
        elif retried_as is not None:
            self.message_user(request, format_html("{} was retried already, as {}: skipped.", result.task_id,
                                                   self._link(retried_as.result)), messages.WARNING)
        else:
            try:
                retried = services.job_retry(result=result, user=request.user)
                self.message_user(request, format_html("Retrying {} as {}.", result.task_id, self._link(retried)))
            except JobLaunchError as exc:
                self.message_user(request, f"Not retried: {exc}", messages.ERROR)
        return redirect("admin:django_celery_results_taskresult_change", object_id)

    def cancel_view(self, request, object_id):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        response = self.cancel_jobs(request, TaskResult.objects.filter(pk=object_id))
        return response or redirect("admin:django_celery_results_taskresult_change", object_id)


admin.site.unregister(TaskResult)
admin.site.register(TaskResult, TaskResultAdmin)


@admin.register(UniqueKey)
class UniqueKeyAdmin(admin.ModelAdmin):
    """The keys unique jobs hold (job(unique=...)), read-only: which job holds one, since and until when.
    Deleting a key lets the next launch with it through at once (a key staff know to be stale)."""

    list_display = ["job_name", "holder", "holder_status", "held_since", "held_until"]
    list_filter = ["job_name"]
    search_fields = ["task_id"]
    ordering = ["-held_since"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="held by")
    def holder(self, key):
        return format_html('<a href="{}">{}</a>', reverse("jobs:detail", args=[key.task_id]), key.task_id)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(status=Subquery(
            TaskResult.objects.filter(task_id=OuterRef("task_id")).values("status")[:1]))

    @admin.display(description="its state")
    def holder_status(self, key):
        return key.status or "—"
