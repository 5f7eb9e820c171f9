import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from jobs.migration_operations import CreateModelOrTakeOver


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("jobs", "0010_move_models_to_apps"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        CreateModelOrTakeOver(
            name="Contact",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("email", models.EmailField(max_length=254, unique=True)),
                ("name", models.CharField(max_length=200)),
                ("phone", models.CharField(blank=True, max_length=40)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["email"]},
        ),
        CreateModelOrTakeOver(
            name="ContactImport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("file", models.FileField(upload_to="imports/%Y/%m/")),
                ("original_name", models.CharField(max_length=255)),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
                ("rows", models.PositiveIntegerField(default=0, help_text="Data rows in the file (the header excluded).")),
                ("imported", models.PositiveIntegerField(default=0)),
                ("invalid", models.PositiveIntegerField(default=0)),
                ("task_id", models.CharField(blank=True, help_text="The import job.", max_length=255)),
                ("uploaded_by", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-uploaded_at"]},
        ),
        CreateModelOrTakeOver(
            name="ImportRowError",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("line", models.PositiveIntegerField()),
                ("reason", models.CharField(max_length=255)),
                ("raw", models.TextField()),
                ("contact_import", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="errors", to="contacts.contactimport")),
            ],
            options={"ordering": ["line"]},
        ),
    ]
