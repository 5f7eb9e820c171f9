"""The engine's tables, for a new database: what 0001-0010 leave of the jobs app once the example
features' models have moved to their own apps. A database that applied some of 0001-0010 goes on
with those instead (Django picks), keeping its rows."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

STALE_JOBS = "fail jobs whose worker was lost"


def stale_jobs_schedule(apps, schema_editor):
    """Every 5 minutes, jobs whose worker vanished mid-run are marked FAILURE (jobs.stale_jobs_fail)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every_5_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(name=STALE_JOBS, defaults={
        "task": "jobs.stale_jobs_fail", "interval": every_5_minutes,
        "description": "Jobs still STARTED past their hard time limit lost their worker: mark them FAILURE.",
    })
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def no_stale_jobs_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=STALE_JOBS).delete()


class Migration(migrations.Migration):
    replaces = [
        ("jobs", "0001_initial"),
        ("jobs", "0002_stored_task_result"),
        ("jobs", "0003_seed_schedules"),
        ("jobs", "0004_job_record"),
        ("jobs", "0005_taskresult_created_id_index"),
        ("jobs", "0006_seed_jobs_models"),
        ("jobs", "0007_seed_job_schedules"),
        ("jobs", "0008_probe"),
        ("jobs", "0009_stale_jobs_schedule"),
        ("jobs", "0010_move_models_to_apps"),
    ]
    initial = True
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("django_celery_results", "0014_alter_taskresult_status"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="StoredTaskResult",
            fields=[],
            options={"verbose_name": "task result", "proxy": True, "indexes": [], "constraints": []},
            bases=("django_celery_results.taskresult",),
        ),
        migrations.CreateModel(
            name="JobRecord",
            fields=[
                ("result", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="record", serialize=False, to="django_celery_results.taskresult")),
                ("origin", models.CharField(choices=[("api", "API"), ("page", "Jobs page"), ("schedule", "Periodic task"), ("retry", "Retry"), ("code", "Code")], default="code", max_length=10)),
                ("arguments", models.JSONField(default=dict, help_text="The job's arguments by name, as JSON.")),
                ("queue", models.CharField(blank=True, db_index=True, max_length=100)),
                ("attempts", models.PositiveIntegerField(default=1, help_text="Celery's retries of this job, plus one.")),
                ("last_error", models.TextField(blank=True, help_text="The error that caused the last retry.")),
                ("cancelled_at", models.DateTimeField(blank=True, null=True)),
                ("cancelled_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("launched_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="jobs", to=settings.AUTH_USER_MODEL)),
                ("retry_of", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="retried_as", to="jobs.jobrecord")),
            ],
            options={
                "verbose_name": "job",
                "permissions": [("retry_job", "Can retry jobs"), ("cancel_job", "Can cancel jobs")],
            },
        ),
        migrations.CreateModel(
            name="JobAction",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(choices=[("retry", "Retry"), ("cancel", "Cancel")], max_length=10)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("detail", models.CharField(blank=True, max_length=255)),
                ("actor", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("record", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="actions", to="jobs.jobrecord")),
            ],
            options={"ordering": ["-created_at"]},
        ),
        # The admin lists results newest first, by (date_created, id): with both in one index, a
        # page is an index-only scan however deep it is. Concurrently: no lock on a busy table.
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_taskresult_created_id "
            "ON django_celery_results_taskresult (date_created, id)",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS jobs_taskresult_created_id",
        ),
        migrations.RunPython(stale_jobs_schedule, no_stale_jobs_schedule),
    ]
