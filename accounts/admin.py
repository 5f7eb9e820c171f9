from django.contrib import admin

from .models import ApiToken


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
