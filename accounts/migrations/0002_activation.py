import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def activated_before(apps, schema_editor):
    """Accounts activated by a link before this table existed: their links are spent too."""
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    EmailDelivery = apps.get_model("accounts", "EmailDelivery")
    Activation = apps.get_model("accounts", "Activation")
    sent = EmailDelivery.objects.filter(key__startswith="activation:").values_list("key", flat=True)
    user_ids = [int(key.split(":", 1)[1]) for key in sent]
    Activation.objects.bulk_create(
        [Activation(user_id=pk) for pk in User.objects.filter(pk__in=user_ids, is_active=True).values_list("pk", flat=True)]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Activation",
            fields=[
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                              related_name="activation", serialize=False, to=settings.AUTH_USER_MODEL)),
                ("activated_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunPython(activated_before, migrations.RunPython.noop),
    ]
