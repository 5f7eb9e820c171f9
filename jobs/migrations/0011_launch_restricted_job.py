from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("jobs", "0010_move_models_to_apps")]

    operations = [
        migrations.AlterModelOptions(
            name="jobrecord",
            options={
                "verbose_name": "job",
                "permissions": [
                    ("retry_job", "Can retry jobs"),
                    ("cancel_job", "Can cancel jobs"),
                    ("launch_restricted_job", "Can launch restricted jobs"),
                ],
            },
        ),
    ]
