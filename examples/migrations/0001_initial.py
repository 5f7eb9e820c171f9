from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from jobs.migration_operations import CreateModelOrTakeOver

ADD = "add 16 + 16 every 30 seconds"
FETCH = "fetch a page twice a day"


def seed_schedules(apps, schema_editor):
    """The seeds' periodic tasks, as editable rows (not CELERY_BEAT_SCHEDULE, which beat would
    write over admin edits at every start), disabled until someone turns them on.

    Only on a new database: one migrated before the apps were split has them from the jobs app's
    0003 and 0007 (and a row deleted there stays deleted)."""
    if "jobs_probe" in schema_editor.connection.introspection.table_names():
        return
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every_30_seconds, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    twice_a_day, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="7,19", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(name=ADD, defaults={
        "task": "jobs.add", "args": "[16, 16]", "interval": every_30_seconds, "enabled": False,
        "description": "The seeds' example: add(16, 16) every 30 seconds.",
    })
    PeriodicTask.objects.get_or_create(name=FETCH, defaults={
        "task": "jobs.fetch_url", "kwargs": '{"url": "https://example.com/"}', "crontab": twice_a_day,
        "enabled": False, "description": "The seeds' scraper: fetch a page at 07:00 and 19:00 and keep its summary.",
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
        # Before the table is taken over: whether jobs_probe exists tells an old database apart.
        migrations.RunPython(seed_schedules, migrations.RunPython.noop),
        CreateModelOrTakeOver(
            name="Probe",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=100, unique=True)),
                ("runs", models.PositiveIntegerField(default=1, help_text="How many times a job recorded this key.")),
                ("first_at", models.DateTimeField(auto_now_add=True)),
                ("last_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
