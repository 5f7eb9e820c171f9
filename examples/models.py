from django.db import models


class Probe(models.Model):
    """The mark the `jobs.probe` job leaves: one row per key, however often the job ran."""

    key = models.CharField(max_length=100, unique=True)
    runs = models.PositiveIntegerField(default=1, help_text="How many times a job recorded this key.")
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.key} ({self.runs} run{'s' if self.runs != 1 else ''})"
