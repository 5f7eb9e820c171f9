from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from jobs.migration_operations import CreateModelOrTakeOver

WEEKLY_REPORT = "weekly job report"


def weekly_report_schedule(apps, schema_editor):
    """The seeds' monthly-report example, weekly: every Monday at 07:30 in TIME_ZONE, as an editable row.

    Only on a new database: one migrated before the apps were split has it from the jobs app's
    0003 and 0007 (and a row deleted there stays deleted)."""
    if "jobs_report" in schema_editor.connection.introspection.table_names():
        return
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    monday_0730, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="7", day_of_week="1", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(name=WEEKLY_REPORT, defaults={
        "task": "jobs.build_report", "kwargs": '{"days": 7}', "crontab": monday_0730,
        "description": "Jobs per day and status over the last week, every Monday at 07:30.",
    })
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("jobs", "0010_move_models_to_apps"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        # Before the table is taken over: whether jobs_report exists tells an old database apart.
        migrations.RunPython(weekly_report_schedule, migrations.RunPython.noop),
        CreateModelOrTakeOver(
            name="Report",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("file", models.FileField(upload_to="reports/%Y/%m/")),
                ("days", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["-created_at"]},
        ),
    ]
