"""The seeds' periodic tasks, as editable rows (not CELERY_BEAT_SCHEDULE, which beat would write
over admin edits at every start). Runs once: a task deleted in the admin stays deleted."""
from django.conf import settings
from django.db import migrations
from django.utils import timezone

SEEDS = ["add 16 + 16 every 30 seconds", "weekly job report"]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    every_30_seconds, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    monday_0730, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="7", day_of_week="1", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(name=SEEDS[0], defaults={
        "task": "jobs.add", "args": "[16, 16]", "interval": every_30_seconds,
        "enabled": False,  # a new install stays quiet until someone turns it on
        "description": "The seeds' example: add(16, 16) every 30 seconds.",
    })
    PeriodicTask.objects.get_or_create(name=SEEDS[1], defaults={
        "task": "jobs.job_report", "kwargs": '{"days": 7}', "crontab": monday_0730,
        "description": "Jobs per day and status over the last week, every Monday at 07:30.",
    })
    # Tell a running beat to re-read the table.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=SEEDS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_stored_task_result"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
