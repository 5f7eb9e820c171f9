"""The alert rules' admin, with each rule's incidents."""
from django import forms
from django.conf import settings
from django.contrib import admin

from ..catalog import catalog
from ..outbound import AddressRefused, url_check
from .models import AlertIncident, AlertRule


class AlertRuleForm(forms.ModelForm):
    task_name = forms.ChoiceField(label="Job", required=False, help_text="The job it watches; empty: every job.")

    class Meta:
        model = AlertRule
        fields = ["name", "enabled", "task_name", "measure", "threshold", "minutes", "email_staff", "webhook_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task_name"].choices = [("", "every job")] + [(name, name) for name in catalog()]

    def clean_webhook_url(self):
        """A webhook is POSTed from inside the network: public addresses only, unless
        ALERT_WEBHOOK_ALLOWED_NETWORKS names the network (checked again at each send)."""
        url = self.cleaned_data["webhook_url"]
        if url:
            try:
                url_check(url, settings.ALERT_WEBHOOK_ALLOWED_NETWORKS)
            except AddressRefused as exc:
                raise forms.ValidationError(f"{exc} Webhooks reach public addresses only; an internal receiver "
                                            "needs its network in ALERT_WEBHOOK_ALLOWED_NETWORKS.") from exc
        return url

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("measure") == AlertRule.Measure.FAILURE_RATE and (cleaned.get("threshold") or 0) >= 100:
            self.add_error("threshold", "A failure rate is a percentage: give a threshold below 100.")
        if not cleaned.get("email_staff") and not cleaned.get("webhook_url"):
            raise forms.ValidationError("Choose whom to tell: staff by email, a webhook, or both.")
        return cleaned


class AlertIncidentInline(admin.TabularInline):
    model = AlertIncident
    fields = readonly_fields = ["started_at", "ended_at", "value"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "task_name", "measure", "threshold", "minutes", "enabled", "state"]
    list_filter = ["enabled", "measure"]
    inlines = [AlertIncidentInline]

    @admin.display(description="now")
    def state(self, rule):
        return "firing" if rule.incidents.filter(ended_at__isnull=True).exists() else "ok"
