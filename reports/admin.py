from django.contrib import admin

from .models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["__str__", "days", "created_at", "file"]
    readonly_fields = ["file", "days", "created_at"]

    def has_add_permission(self, request):
        return False  # reports are built by the jobs.build_report job
