"""Results admin filters whose choices come from the catalog, the settings and the latest rows,
never from a DISTINCT over the whole results table."""
from django.contrib import admin
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from ..catalog import catalog
from ..queues.selectors import job_queue_names, paused_queues
from ..records.selectors import STATES
from ..workflows.models import Workflow


class ChoicesFilter(admin.SimpleListFilter):
    """A filter on one column whose choices come from somewhere cheaper than the table itself."""

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class StatusFilter(ChoicesFilter):
    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [(state, state) for state in STATES]


class JobFilter(ChoicesFilter):
    title, parameter_name = "job", "task_name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in catalog()]


class QueueFilter(ChoicesFilter):
    title, parameter_name = "queue", "record__queue"

    def lookups(self, request, model_admin):
        paused = paused_queues()
        return [(name, f"{name} (paused)" if name in paused else name) for name in job_queue_names()]


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


class WorkflowFilter(ChoicesFilter):
    title, parameter_name = "workflow", "record__step__workflow_id"

    def lookups(self, request, model_admin):
        # The latest workflows, and the one asked for (a workflow's page links here).
        flows = list(Workflow.objects.values_list("id", "name")[:20])
        if self.value() and self.value() not in {pk for pk, _ in flows}:
            flows.append((self.value(), ""))
        return [(pk, f"{name or 'workflow'} {pk[:13]}…") for pk, name in flows]
