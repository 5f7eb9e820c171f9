"""Workflows in the admin: the list by state and name, each with its live graph, its steps' jobs in
the results admin, and a cancel action audited like a job's."""
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from ..exceptions import JobNotCancellable
from . import services
from .models import Workflow
from .views import workflow_context


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "state", "steps_total", "launched_by", "origin", "created_at", "finished_at"]
    list_filter = ["state", "name", "origin", "created_at"]
    list_select_related = ["launched_by"]
    search_fields = ["=id", "name"]
    ordering = ["-created_at"]
    actions = ["cancel_workflows"]
    change_form_template = "admin/jobs/workflow_change_form.html"
    fields = ["id", "name", "state", "steps_total", "launched_by", "origin", "launcher", "created_at", "finished_at",
              "error", "result", "spec", "jobs"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Its jobs")
    def jobs(self, obj):
        url = reverse("admin:django_celery_results_taskresult_changelist")
        return format_html('<a href="{}?record__step__workflow_id={}">Every step\'s job in the results</a>', url, obj.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        flow = self.get_object(request, object_id)
        extra = workflow_context(flow) if flow else {}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.action(description="Cancel the selected workflows", permissions=["cancel"])
    def cancel_workflows(self, request, queryset):
        cancelled = 0
        for flow in queryset:
            try:
                services.workflow_cancel(workflow=flow, user=request.user)
                cancelled += 1
            except JobNotCancellable as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"Cancelled {cancelled} workflows.")

    def has_cancel_permission(self, request):
        return request.user.has_perm("jobs.cancel_job")
