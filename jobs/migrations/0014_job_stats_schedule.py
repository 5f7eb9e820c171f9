"""Every minute, the jobs finished since are counted for the charts and metrics (jobs.job_stats_count)."""
from django.db import migrations
from django.utils import timezone

NAME = "count finished jobs for the charts"


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(name=NAME, defaults={
        "task": "jobs.job_stats_count", "interval": every_minute,
        "description": "Count the jobs finished in the last minute by job, queue and state, with their "
                       "wait and run times: the operations charts and /metrics read these counts.",
    })
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0013_job_stats"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(forward, backward)]
