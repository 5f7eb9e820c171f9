"""Search as operators paste: text inside job arguments and inside failed jobs' errors, found by
trigram indexes (pg_trgm), so a substring search reads a few index pages, not 10 million rows.
The error index holds failed results only: the other states' writes never touch it."""
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY: no lock on tables the workers keep writing

    dependencies = [("jobs", "0014_job_stats_schedule")]

    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS pg_trgm", reverse_sql=migrations.RunSQL.noop),
        # The expressions are Django's own for icontains (UPPER(column::text) LIKE UPPER(...)).
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_jobrecord_arguments_trgm "
            "ON jobs_jobrecord USING gin (UPPER(arguments::text) gin_trgm_ops)",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS jobs_jobrecord_arguments_trgm",
        ),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_taskresult_error_trgm "
            "ON django_celery_results_taskresult USING gin (UPPER(result) gin_trgm_ops) WHERE status = 'FAILURE'",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS jobs_taskresult_error_trgm",
        ),
    ]
