from django.db import models


class Report(models.Model):
    """A generated report file."""

    file = models.FileField(upload_to="reports/%Y/%m/")
    days = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Report of the last {self.days} days ({self.created_at:%Y-%m-%d %H:%M})"
