"""Every 5 minutes, jobs whose worker vanished mid-run are marked FAILURE (jobs.stale_jobs_fail)."""
from django.db import migrations
from django.utils import timezone

NAME = "fail jobs whose worker was lost"


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every_5_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(name=NAME, defaults={
        "task": "jobs.stale_jobs_fail", "interval": every_5_minutes,
        "description": "Jobs still STARTED past their hard time limit lost their worker: mark them FAILURE.",
    })
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0008_probe")]

    operations = [migrations.RunPython(forward, backward)]
