"""The limits in the admin: each limited job's limit, as declared and as in force, changed at run time with
its history; and the jobs waiting on them, with the limit's name and how long each has waited."""
from celery import current_app
from django import forms
from django.contrib import admin
from django.db.models import Count, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from ..catalog import catalog, rate_interval
from .models import JobLimit, WaitingJob
from .selectors import limit_description


class JobLimitForm(forms.ModelForm):
    class Meta:
        model = JobLimit
        fields = ["rate", "concurrency"]

    def clean_rate(self):
        rate = self.cleaned_data["rate"].strip()
        if rate:
            try:
                rate_interval(rate)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return rate


def declared(limit: JobLimit) -> tuple[str | None, int | None]:
    task = current_app.tasks.get(limit.job_name)
    return (task.limit.rate, task.limit.concurrency) if getattr(task, "limit", None) else (None, None)


@admin.register(JobLimit)
class JobLimitAdmin(admin.ModelAdmin):
    """Every limited job of the catalog, with its limit in force and what waits on it. Changing the rate or
    the concurrency holds within a second on every process; blank goes back to the declaration."""

    form = JobLimitForm
    list_display = ["job_name", "in_force", "as_declared", "waiting", "waited_longest"]
    readonly_fields = ["job_name", "as_declared"]
    fields = ["job_name", "as_declared", "rate", "concurrency"]

    def has_add_permission(self, request):
        return False  # one per limited job of the catalog, made below

    def changelist_view(self, request, extra_context=None):
        JobLimit.objects.bulk_create([JobLimit(job_name=name) for name, task in catalog().items() if task.limit],
                                     ignore_conflicts=True)
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        waiting = (WaitingJob.objects.filter(job_name=OuterRef("job_name"), dispatched_at=None).order_by()
                   .values("job_name"))
        return super().get_queryset(request).annotate(
            waiting_count=Coalesce(Subquery(waiting.annotate(count=Count("*")).values("count")), 0),
            waiting_since=Subquery(waiting.annotate(since=Min("waiting_since")).values("since")))

    @admin.display(description="in force")
    def in_force(self, limit):
        task = current_app.tasks.get(limit.job_name)
        return limit_description(task) if getattr(task, "limit", None) else "— (no longer declared)"

    @admin.display(description="as declared")
    def as_declared(self, limit):
        rate, concurrency = declared(limit)
        return ", ".join(part for part in (rate, concurrency and f"at most {concurrency} running") if part) or "—"

    @admin.display(description="jobs waiting", ordering="waiting_count")
    def waiting(self, limit):
        if not limit.waiting_count:
            return 0
        url = reverse("admin:jobs_waitingjob_changelist") + f"?job_name={limit.job_name}"
        return format_html('<a href="{}">{}</a>', url, limit.waiting_count)

    @admin.display(description="longest wait", ordering="waiting_since")
    def waited_longest(self, limit):
        return timesince(limit.waiting_since, depth=1) if limit.waiting_since else "—"

    def construct_change_message(self, request, form, formsets, add=False):
        """Each change with its values before and after, in the admin's history (the audit)."""
        rate, concurrency = declared(form.instance)
        as_declared = {"rate": rate, "concurrency": concurrency}
        changes = []
        for field in form.changed_data:
            before, after = form.initial.get(field), form.cleaned_data[field]
            changes.append(f"{field} {before or f'{as_declared[field]} (as declared)'} → "
                           f"{after or f'{as_declared[field]} (as declared)'}")
        return "; ".join(changes) or "No fields changed."


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("waiting", "waiting"), ("sent", "sent, holding a slot")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(dispatched_at__isnull=self.value() == "waiting")
        return queryset


@admin.register(WaitingJob)
class WaitingJobAdmin(admin.ModelAdmin):
    """The jobs waiting on their limits, longest first, and those holding a concurrency slot (sent), read-only.
    A waiting job is cancelled from its job page, like any other."""

    list_display = ["job", "job_name", "key", "limit", "state", "waited"]
    list_filter = [StateFilter, "job_name"]
    search_fields = ["task_id", "key"]
    ordering = ["waiting_since"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a job whose row went would never be sent: cancel it instead

    @admin.display(description="job")
    def job(self, waiting):
        return format_html('<a href="{}">{}</a>', reverse("jobs:detail", args=[waiting.task_id]), waiting.task_id)

    @admin.display(description="limit")
    def limit(self, waiting):
        task = current_app.tasks.get(waiting.job_name)
        return limit_description(task) if getattr(task, "limit", None) else "—"

    @admin.display(description="state")
    def state(self, waiting):
        if waiting.dispatched_at:
            return "sent: holds a slot until it ends"
        return "waiting" if waiting.not_before <= timezone.now() else f"retry at {waiting.not_before:%H:%M:%S}"

    @admin.display(description="waited", ordering="waiting_since")
    def waited(self, waiting):
        return timesince(waiting.waiting_since, waiting.dispatched_at or timezone.now(), depth=2)
