from django.contrib import admin

from .models import Activation, ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py token_create` (the only place the token is shown);
    here they can be reviewed and revoked by deleting them."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False


@admin.register(Activation)
class ActivationAdmin(admin.ModelAdmin):
    """When each account was activated by its link (a link works once)."""

    list_display = ["user", "activated_at"]
    search_fields = ["user__username", "user__email"]
    readonly_fields = ["user", "activated_at"]

    def has_add_permission(self, request):
        return False
