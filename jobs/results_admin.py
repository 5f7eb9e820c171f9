"""The job results admin: every job from the moment it is queued, retry and cancel, fast at scale.

Stock django-celery-results' admin counts the whole table on every page, lists filter choices
with table-wide DISTINCTs, and searches arguments with LIKE over every row. Here: filter choices
come from the catalog, the configured queues, the periodic-task table and the latest results;
search is by exact id or job name (both indexed); the page count is exact up to 10,000 rows and
the planner's estimate beyond.
"""
from functools import cached_property

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from . import selectors, services
from .catalog import InvalidArguments, UnknownJob, catalog

EXACT_COUNT_LIMIT = 10_000


class EstimatingPaginator(Paginator):
    """Counts exactly up to EXACT_COUNT_LIMIT rows, and asks PostgreSQL's planner beyond that.

    A page is found by its ids alone first (an index-only scan past the skipped rows), and only
    those rows are then read with their joins: a deep page costs the skipped index entries, not
    the skipped rows.
    """

    def page(self, number):
        number = self.validate_number(number)
        start = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[start: start + self.per_page])
        return self._get_page(list(self.object_list.filter(pk__in=ids)), number, self)

    @cached_property
    def count(self):
        exact = self.object_list.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        query = self.object_list.order_by()
        sql, params = query.query.sql_with_params()
        with connections[query.db].cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            return max(int(cursor.fetchone()[0][0]["Plan"]["Plan Rows"]), exact)


class ChoicesFilter(admin.SimpleListFilter):
    """A filter on one column whose choices come from somewhere cheaper than the table itself."""

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class StatusFilter(ChoicesFilter):
    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [(state, state) for state in selectors.STATES]


class JobFilter(ChoicesFilter):
    title, parameter_name = "job", "task_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in catalog()]


class QueueFilter(ChoicesFilter):
    title, parameter_name = "queue", "job__queue"

    def lookups(self, request, model_admin):
        return [(queue.name, queue.name) for queue in settings.CELERY_TASK_QUEUES]


class WorkerFilter(ChoicesFilter):
    title, parameter_name = "worker", "worker"

    def lookups(self, request, model_admin):
        # The workers of the latest results, not a DISTINCT over the whole table.
        recent = TaskResult.objects.order_by("-date_created").values_list("worker", flat=True)[:1000]
        return [(worker, worker) for worker in sorted({worker for worker in recent if worker})]


class PeriodicTaskFilter(ChoicesFilter):
    title, parameter_name = "periodic task", "periodic_task_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in PeriodicTask.objects.order_by("name").values_list("name", flat=True)]


class TaskResultAdmin(admin.ModelAdmin):
    list_display = ["task_id", "task_name", "status", "queue", "worker", "periodic_task_name",
                    "date_created", "date_done", "launched_by"]
    list_filter = [StatusFilter, JobFilter, QueueFilter, WorkerFilter, PeriodicTaskFilter, "date_created"]
    list_select_related = ["job__launched_by"]
    list_per_page = 100
    paginator = EstimatingPaginator
    show_full_result_count = False
    search_fields = ["task_id", "task_name"]  # exact, and case-sensitive, to use their indexes
    search_help_text = "A job id, or a job name such as jobs.add (exact)."
    ordering = ["-date_created"]
    actions = ["retry_jobs", "cancel_jobs"]
    change_form_template = "admin/jobs/taskresult_change_form.html"
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "status", "progress", "outcome", "arguments")}),
        ("Timings", {"fields": ("date_created", "date_started", "date_done", "durations")}),
        ("Origin", {"fields": ("launched_by", "origin", "periodic_task_name", "queue", "worker",
                               "attempt", "retry_chain", "audit")}),
        ("Raw", {"fields": ("task_args", "task_kwargs", "result", "traceback", "meta"), "classes": ("collapse",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(task_id=term) | Q(task_name=term)), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # results are what the workers recorded

    def has_retry_permission(self, request):
        return request.user.has_perm("jobs.retry_job")

    def has_cancel_permission(self, request):
        return request.user.has_perm("jobs.cancel_job")

    @admin.display(description="queue")
    def queue(self, obj):
        return getattr(getattr(obj, "job", None), "queue", "")

    @admin.display(description="launched by")
    def launched_by(self, obj):
        job = getattr(obj, "job", None)
        return (job.launched_by or job.get_origin_display()) if job else ""

    @admin.display(description="origin")
    def origin(self, obj):
        job = getattr(obj, "job", None)
        return job.get_origin_display() if job else "not recorded at launch"

    @admin.display(description="progress")
    def progress(self, obj):
        progress = selectors.job_progress(obj)
        if progress["percent"] is None:
            return "-"
        return format_html('<progress max="100" value="{}"></progress> {}% {}',
                           progress["percent"], progress["percent"], progress["message"])

    @admin.display(description="result or error")
    def outcome(self, obj):
        result, error = selectors.job_outcome(obj)
        return error or ("-" if result is None else result)

    @admin.display(description="arguments")
    def arguments(self, obj):
        job = getattr(obj, "job", None)
        return job.arguments if job else f"{obj.task_args} {obj.task_kwargs}"

    @admin.display(description="queued → started → done")
    def durations(self, obj):
        parts = []
        if obj.date_started:
            parts.append(f"waited {(obj.date_started - obj.date_created).total_seconds():.3f} s")
            if obj.date_done and obj.status in ("SUCCESS", "FAILURE", "REVOKED"):
                parts.append(f"ran {(obj.date_done - obj.date_started).total_seconds():.3f} s")
        return ", ".join(parts) or "-"

    @admin.display(description="attempt")
    def attempt(self, obj):
        job = getattr(obj, "job", None)
        if not job:
            return "-"
        return f"{job.attempts} (last error: {job.last_error})" if job.last_error else job.attempts

    @admin.display(description="retries")
    def retry_chain(self, obj):
        job = getattr(obj, "job", None)
        if not job:
            return "-"
        links = []
        if job.retry_of:
            links.append(("retry of", self._link(job.retry_of.result), ""))
        links.extend(("retried as", self._link(retry.result), "") for retry in job.retried_as.select_related("result"))
        return format_html_join(format_html("<br>"), "{} {}{}", links) if links else "-"

    @admin.display(description="retries and cancellations")
    def audit(self, obj):
        job = getattr(obj, "job", None)
        actions = job.actions.select_related("actor") if job else []
        return format_html_join(format_html("<br>"), "{}", ((str(action),) for action in actions)) or "-"

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

    def _jobs(self, request, queryset):
        recorded = [result for result in queryset.select_related("job") if hasattr(result, "job")]
        if len(recorded) < len(queryset):
            self.message_user(request, "Jobs not recorded at launch (no arguments kept) were skipped.", messages.WARNING)
        return recorded

    @admin.action(description="Retry selected jobs (same arguments)", permissions=["retry"])
    def retry_jobs(self, request, queryset):
        for result in self._jobs(request, queryset):
            try:
                retried = services.job_retry(record=result.job, user=request.user)
            except (UnknownJob, InvalidArguments, services.JobQueueUnavailable) as exc:
                self.message_user(request, f"{result.task_id} not retried: {exc}", messages.ERROR)
                continue
            self.message_user(request, format_html("Retrying {} as {}.", result.task_id, self._link(retried)))

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        jobs = self._jobs(request, queryset)
        if "confirm" not in request.POST:
            return TemplateResponse(request, "admin/jobs/taskresult_cancel.html", {
                **self.admin_site.each_context(request), "jobs": jobs, "opts": self.opts,
                "action": "cancel_jobs", "title": "Cancel jobs?",
            })
        for result in jobs:
            try:
                services.job_cancel(record=result.job, user=request.user)
                self.message_user(request, f"Cancelled {result.task_id}.")
            except services.JobNotCancellable as exc:
                self.message_user(request, str(exc), messages.WARNING)

    def retry_view(self, request, object_id):
        if request.method != "POST" or not self.has_retry_permission(request):
            raise PermissionDenied
        get_object_or_404(TaskResult, pk=object_id)
        self.retry_jobs(request, TaskResult.objects.filter(pk=object_id))
        return redirect("admin:django_celery_results_taskresult_change", object_id)

    def cancel_view(self, request, object_id):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        response = self.cancel_jobs(request, TaskResult.objects.filter(pk=object_id))
        return response or redirect("admin:django_celery_results_taskresult_change", object_id)


admin.site.unregister(TaskResult)
admin.site.register(TaskResult, TaskResultAdmin)
