"""The periodic-task admin: jobs picked from the catalog, arguments checked, schedules previewed, run now."""
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from ..catalog import catalog
from ..exceptions import JobLaunchError
from . import checks, previews, services


def _local(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def restricted_names() -> set[str]:
    """The catalog's restricted jobs: scheduling one is launching it, and takes the same permission."""
    return {name for name, task in catalog().items() if task.restricted}


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    """Jobs are picked from the catalog (those the user may launch), and their arguments checked
    against its types."""

    regtask = forms.ChoiceField(label="Job")
    task = forms.CharField(widget=forms.HiddenInput, required=False)
    user = None  # set by PeriodicTaskAdmin.get_form on the class it makes for each request

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tasks = catalog(self.user)
        choices = [("", "---------")] + [(name, name) for name in tasks]
        current = self.instance.task
        if current and current not in tasks:  # e.g. celery.backend_cleanup, installed by beat
            choices.append((current, current))
        field = self.fields["regtask"]
        field.choices = choices
        field.initial = current
        field.help_text = format_html(
            "<br>".join(["{}"] * len(tasks)) or "No launchable jobs.",
            *(f"{task.usage} — {task.description}" for task in tasks.values()),
        )
        self.fields["args"].help_text = 'Positional arguments as a JSON list, e.g. [2, 3].'
        self.fields["kwargs"].help_text = 'Arguments by name as a JSON object, e.g. {"x": 2, "y": 3}.'

    def clean(self):
        data = super().clean()
        if self.has_error("args") or self.has_error("kwargs"):
            return data  # the JSON did not parse: that error says it all
        # Beat would launch it for them: scheduling a restricted job (or changing a row of one) is launching it.
        restricted = restricted_names() & {data.get("task"), self.instance.task}
        if restricted and not self.user.has_perm("jobs.launch_restricted_job"):
            raise ValidationError({"regtask": f"{restricted.pop()} is restricted: scheduling it needs the "
                                              "'Can launch restricted jobs' permission."})
        candidate = PeriodicTask(task=data.get("task"), args=data.get("args"), kwargs=data.get("kwargs"))
        try:
            checks.periodic_task_check(candidate)
        except ValidationError as exc:
            fields = getattr(exc, "error_dict", {})
            raise ValidationError(
                {"regtask" if name == "task" else name: errors for name, errors in fields.items()}
            ) from exc
        return data


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    form = PeriodicTaskForm
    change_form_template = "admin/jobs/periodictask_change_form.html"
    list_display = ["name", "task", "enabled", "schedule_in_words", "next_run", "last_run", "history", "problem"]
    list_filter = ["enabled", "one_off", "task"]
    actions = ["enable_tasks", "disable_tasks", "toggle_tasks", "run_now"]
    fieldsets = (
        (None, {"fields": ("name", "regtask", "task", "enabled", "problem", "description")}),
        ("Schedule", {
            "fields": ("interval", "crontab", "solar", "clocked", "start_time", "one_off",
                       "schedule_in_words", "upcoming_runs", "last_run", "history"),
            "description": "Choose exactly one of interval, crontab, solar event or clocked time.",
        }),
        ("Arguments", {"fields": ("args", "kwargs")}),
        ("Execution options", {
            "fields": ("expires", "expire_seconds", "queue", "exchange", "routing_key", "priority", "headers"),
            "classes": ("collapse",),
        }),
    )
    readonly_fields = ["schedule_in_words", "upcoming_runs", "last_run", "history", "problem"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a class made for this request
        form.user = request.user
        return form

    def _without_restricted(self, request, queryset):
        """The tasks of `queryset` this user may turn on; says which were left alone."""
        if request.user.has_perm("jobs.launch_restricted_job"):
            return queryset
        skipped = list(queryset.filter(task__in=restricted_names()).values_list("name", flat=True))
        if skipped:
            self.message_user(request, f"Not changed: {', '.join(skipped)} (restricted jobs: enabling one takes the "
                              "'Can launch restricted jobs' permission).", messages.WARNING)
        return queryset.exclude(task__in=restricted_names())

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        super().enable_tasks(request, self._without_restricted(request, queryset))

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request, queryset):
        super().toggle_tasks(request, self._without_restricted(request, queryset))

    def get_queryset(self, request):
        # The last run is the newest of its runs, however it was started (beat, Run now) and
        # whether or not the task is enabled now (disabling a task clears its last_run_at).
        runs = TaskResult.objects.filter(periodic_task_name=OuterRef("name")).order_by("-date_created")
        return super().get_queryset(request).annotate(
            last_run_created=Subquery(runs.values("date_created")[:1]), last_status=Subquery(runs.values("status")[:1])
        )

    @admin.display(description="Problem")
    def problem(self, obj):
        """Why beat would not send this task (it disables such a row instead of stopping)."""
        return (checks.periodic_task_problem(obj) or "-") if obj.pk else "-"

    @admin.display(description="Schedule")
    def schedule_in_words(self, obj):
        return previews.schedule_in_words(obj) if obj.pk else "-"

    @admin.display(description="Next run")
    def next_run(self, obj):
        runs = previews.next_runs(obj, count=1)
        return _local(runs[0]) if runs else "-"

    @admin.display(description="Next five runs")
    def upcoming_runs(self, obj):
        runs = previews.next_runs(obj) if obj.pk else []
        if not runs:
            return "None (disabled, finished, or no schedule yet)." if obj.pk else "Choose a schedule to see them."
        return format_html_join("", "<div>{}</div>", ((_local(run),) for run in runs))

    @admin.display(description="Last run")
    def last_run(self, obj):
        created = getattr(obj, "last_run_created", None)
        if created is not None:
            return f"{_local(created)} ({obj.last_status})"
        # No result row: a job that keeps none (ignore_result), or results past their retention.
        if obj.last_run_at:
            return f"{_local(obj.last_run_at)} (sent; no result kept)"
        if obj.total_run_count:
            return f"{obj.total_run_count} run{pluralize(obj.total_run_count)} sent; no result kept"
        return "Never"

    @admin.display(description="History")
    def history(self, obj):
        if not obj.pk:
            return "-"
        url = reverse("admin:django_celery_results_taskresult_changelist")
        return format_html('<a href="{}?{}">Runs</a>', url, urlencode({"periodic_task_name": obj.name}))

    def get_urls(self):
        extra = [
            path("preview/", self.admin_site.admin_view(self.preview_view),
                 name="django_celery_beat_periodictask_preview"),
            path("<int:object_id>/run-now/", self.admin_site.admin_view(self.run_now_view),
                 name="django_celery_beat_periodictask_run_now"),
        ]
        return extra + super().get_urls()

    def preview_view(self, request):
        """The schedule in words and its next five runs, for the form's current choices."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        candidate = PeriodicTask(enabled=request.GET.get("enabled") != "false", one_off=request.GET.get("one_off") == "true")
        for kind, model in (("interval", beat_admin.IntervalSchedule), ("crontab", CrontabSchedule),
                            ("solar", beat_admin.SolarSchedule), ("clocked", beat_admin.ClockedSchedule)):
            if request.GET.get(kind, "").isdigit():
                setattr(candidate, kind, model.objects.filter(pk=request.GET[kind]).first())
        start_time = parse_datetime(request.GET.get("start_time", ""))
        if start_time:
            candidate.start_time = timezone.make_aware(start_time) if timezone.is_naive(start_time) else start_time
        chosen = [kind for kind in ("interval", "crontab", "solar", "clocked") if getattr(candidate, kind)]
        if len(chosen) != 1:
            return JsonResponse({"schedule": "", "next_runs": [], "error": "Choose exactly one schedule."})
        return JsonResponse({
            "schedule": previews.schedule_in_words(candidate),
            "next_runs": [_local(run) for run in previews.next_runs(candidate)],
        })

    def run_now_view(self, request, object_id):
        """The 'Run now' button: POST only, then back to the task."""
        task = get_object_or_404(PeriodicTask, pk=object_id)
        if request.method != "POST" or not self.has_change_permission(request, task):
            raise PermissionDenied
        self._run(request, [task])
        return redirect("admin:django_celery_beat_periodictask_change", object_id)

    @admin.action(description="Run selected tasks now (with their queue and options)")
    def run_now(self, request, queryset):
        self._run(request, queryset)

    def _run(self, request, tasks):
        for task in tasks:
            try:
                result = services.periodic_task_run_now(periodic_task=task, launched_by=request.user)
            except JobLaunchError as exc:
                self.message_user(request, f"{task.name}: not run. {exc}", messages.ERROR)
                continue
            url = reverse("admin:django_celery_results_taskresult_changelist")
            self.message_user(request, format_html(
                '{}: started job <a href="{}?q={}">{}</a>.', task.name, url, result.task_id, result.task_id
            ))


class CrontabScheduleForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = ["minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone"]

    def clean(self):
        data = super().clean()
        if not self.errors:
            checks.crontab_check(CrontabSchedule(**{
                field: data[field] for field in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
            }))
        return data


admin.site.unregister(CrontabSchedule)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin):
    form = CrontabScheduleForm
