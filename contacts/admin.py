from django.contrib import admin

from .models import Contact, ContactImport, ImportRowError


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "phone", "owner", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["email", "name", "owner__username"]


class ImportRowErrorInline(admin.TabularInline):
    model = ImportRowError
    fields = readonly_fields = ["line", "reason", "raw"]
    extra = 0
    can_delete = False
    max_num = 0  # refused rows are what the import found: read-only


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    list_display = ["original_name", "uploaded_by", "uploaded_at", "rows", "imported", "invalid", "workflow"]
    list_filter = ["uploaded_at"]
    readonly_fields = ["file", "original_name", "uploaded_by", "uploaded_at", "rows", "imported", "invalid", "workflow",
                       "task_id"]
    inlines = [ImportRowErrorInline]

    def has_add_permission(self, request):
        return False  # uploads go through the import page, which checks the file
