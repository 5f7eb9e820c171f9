"""An index django-celery-results' table lacks: the admin lists results newest first, ordered by
(date_created, id); with both in one index, a page is an index-only scan however deep it is."""
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY: no lock on a table the workers keep writing

    dependencies = [
        ("jobs", "0004_job_record"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_taskresult_created_id "
            "ON django_celery_results_taskresult (date_created, id)",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS jobs_taskresult_created_id",
        ),
    ]
