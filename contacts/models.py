from django.conf import settings
from django.db import models


class Contact(models.Model):
    """What the CSV import fills: one row per owner and email address. An import only ever writes
    its uploader's contacts; contacts imported before owners existed have none."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="contacts")
    email = models.EmailField()
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Where its values come from: an import's chunks run side by side and may be retried, so an
    # address in several rows keeps the last row of the newest import, whichever chunk ran last.
    source = models.ForeignKey("ContactImport", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    line = models.PositiveIntegerField(default=0, help_text="The line of the source file its values come from.")

    class Meta:
        ordering = ["email"]
        constraints = [models.UniqueConstraint(fields=["owner", "email"], name="contacts_contact_owner_email")]

    def __str__(self):
        return f"{self.name} <{self.email}>"


class ContactImport(models.Model):
    """An uploaded CSV file of contacts, and what importing it found."""

    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveIntegerField(default=0, help_text="Data rows in the file (the header excluded).")
    imported = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    workflow = models.ForeignKey("jobs.Workflow", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                 help_text="The import: its chunks side by side, then their summary.")
    task_id = models.CharField(max_length=255, blank=True, help_text="The import job, for imports made before workflows.")

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self):
        return f"{self.original_name} ({self.uploaded_at:%Y-%m-%d %H:%M})"


class ImportRowError(models.Model):
    """A CSV row the import refused, with its line number and why."""

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="errors")
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=255)
    raw = models.TextField()

    class Meta:
        ordering = ["line"]

    def __str__(self):
        return f"line {self.line}: {self.reason}"

