"""Alerts: rules checked against the statistics each minute, and their notices."""
import logging

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from ..outbound import AddressRefused, post_json, url_redacted
from . import selectors
from .models import AlertIncident, AlertRule

logger = logging.getLogger(__name__)


def alerts_evaluate(*, now=None) -> None:
    """Measure every enabled alert rule over its window of job statistics; open an incident (and
    notify) when a rule's measure goes above its threshold, close it (and notify) when it is back.
    Run after each statistics count, so once a minute."""
    now = now or timezone.now()
    for rule in AlertRule.objects.filter(enabled=True):
        value = selectors.alert_measure(rule, now=now)
        firing = value is not None and value > rule.threshold
        open_incident = rule.incidents.filter(ended_at__isnull=True).first()
        if firing and open_incident is None:
            incident = AlertIncident.objects.create(rule=rule, value=value)
            _alert_notify(rule, incident, state="firing", value=value)
        elif not firing and open_incident is not None:
            open_incident.ended_at = now
            open_incident.save(update_fields=["ended_at"])
            _alert_notify(rule, open_incident, state="resolved", value=value)


def _alert_notify(rule: AlertRule, incident: AlertIncident, *, state: str, value: float | None) -> None:
    """Tell staff and the webhook; a failure to tell is logged, never raised (the next rule waits)."""
    measured = "no jobs" if value is None else f"{value:.3g}"
    subject = f"[jobs] {rule.name}: {state} ({rule.get_measure_display()} {measured}, threshold {rule.threshold:g})"
    body = (f"{rule.name} is {state}.\nJob: {rule.task_name or 'every job'}\nMeasure: {rule.get_measure_display()} "
            f"over the last {rule.minutes} minutes = {measured} (threshold {rule.threshold:g})\n"
            f"Incident began {incident.started_at:%Y-%m-%d %H:%M:%S %Z}.\nOperations: {settings.SITE_URL}/admin/jobs/queue/")
    if rule.email_staff:
        recipients = list(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                          .values_list("email", flat=True))
        try:
            send_mail(subject, body, None, recipients)
        except OSError as exc:
            logger.error("Alert %s: email not sent: %s", rule.name, exc)
    if rule.webhook_url:
        payload = {"rule": rule.name, "state": state, "job": rule.task_name or None, "measure": rule.measure,
                   "value": value, "threshold": rule.threshold, "minutes": rule.minutes,
                   "started_at": incident.started_at.isoformat(),
                   "ended_at": incident.ended_at.isoformat() if incident.ended_at else None}
        try:
            post_json(rule.webhook_url, payload, allowed_networks=settings.ALERT_WEBHOOK_ALLOWED_NETWORKS)
        except (AddressRefused, httpx.HTTPError) as exc:
            # Neither the URL's credentials nor the answer's body: the log is read by more people.
            logger.error("Alert %s: webhook %s failed: %s", rule.name, url_redacted(rule.webhook_url),
                         exc if isinstance(exc, AddressRefused) else f"{type(exc).__name__}: {exc}")
