"""The seeds' weekly report now builds a report file (jobs.build_report), and their scraper runs
twice a day (disabled until someone points it at a page and turns it on)."""
from django.conf import settings
from django.db import migrations
from django.utils import timezone

FETCH = "fetch a page twice a day"


def forward(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    PeriodicTask.objects.filter(name="weekly job report", task="jobs.job_report").update(task="jobs.build_report")
    twice_a_day, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="7,19", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(name=FETCH, defaults={
        "task": "jobs.fetch_url", "kwargs": '{"url": "https://example.com/"}', "crontab": twice_a_day,
        "enabled": False, "description": "The seeds' scraper: fetch a page at 07:00 and 19:00 and keep its summary.",
    })
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name="weekly job report").update(task="jobs.job_report")
    PeriodicTask.objects.filter(name=FETCH).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_seed_jobs_models")]

    operations = [migrations.RunPython(forward, backward)]
