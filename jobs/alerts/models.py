"""Alert rules and their incidents."""
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class AlertRule(models.Model):
    """A condition on recent job statistics that notifies people when it holds: staff by email, a
    webhook, or both; once when an incident begins and once when it ends."""

    class Measure(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Failure rate, in %"
        WAIT_P95 = "wait_p95", "Queue wait p95, in seconds"

    name = models.CharField(max_length=200, unique=True)
    task_name = models.CharField("job", max_length=255, blank=True, help_text="The job it watches; empty: every job.")
    measure = models.CharField(max_length=20, choices=Measure.choices)
    threshold = models.FloatField(validators=[MinValueValidator(0)], help_text="Fires when the measure is above this.")
    minutes = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(1440)],
                                          help_text="Over the last this many minutes (1 to 1440).")
    email_staff = models.BooleanField(default=True, help_text="Email every active staff user with an address.")
    webhook_url = models.URLField(blank=True, help_text="POSTed a JSON description of the incident.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AlertIncident(models.Model):
    """A time an alert rule's condition held: from when it was first seen to when it no longer was."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(help_text="The measure when it began.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=models.Q(ended_at__isnull=True),
                                               name="jobs_alertincident_one_open_per_rule")]

    def __str__(self):
        return f"{self.rule} since {self.started_at:%Y-%m-%d %H:%M}" + (" (ended)" if self.ended_at else "")
