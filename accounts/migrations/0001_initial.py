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
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="What the token is for, e.g. 'nightly import script'.", max_length=100)),
                ("prefix", models.CharField(help_text="The token's first characters, to recognise it.", max_length=8)),
                ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens", to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "API token", "ordering": ["-created_at"]},
        ),
        CreateModelOrTakeOver(
            name="EmailDelivery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(help_text="What the email is, e.g. 'activation:42'.", max_length=200, unique=True)),
                ("recipient", models.EmailField(max_length=254)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"verbose_name_plural": "email deliveries"},
        ),
    ]
