"""Databases for benchmarks and test processes: a throwaway one, a copy, the URL of the current
one, and made-up results to fill them with."""
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import quote

from django.db import connection
from django_celery_results.models import TaskResult

# Finished results one second apart going back from a time, with random task ids as Celery makes
# them: the history a results table holds, in the mix of jobs, states and workers bench_admin's
# filters look for. Inserted with the table's indexes in place, so they are laid out as in life.
RESULTS_FILL = """
INSERT INTO django_celery_results_taskresult
    (task_id, status, content_type, content_encoding, result, meta, task_args, task_kwargs,
     task_name, worker, periodic_task_name, date_created, date_started, date_done)
SELECT gen_random_uuid()::text,
       (ARRAY['SUCCESS','SUCCESS','SUCCESS','SUCCESS','SUCCESS','SUCCESS','SUCCESS','FAILURE','REVOKED','RETRY'])[1 + i %% 10],
       'application/json', 'utf-8',
       CASE WHEN i %% 10 = 7 THEN '{"exc_type": "ValueError", "exc_message": ["row ' || i || ' failed"]}' ELSE '8' END,
       '{"children": []}', '"()"', '"{''x'': 4, ''y'': 4}"',
       (ARRAY['jobs.add', 'jobs.say_hello', 'jobs.countdown', 'jobs.build_report'])[1 + i %% 4],
       'celery@worker' || (i %% 4), CASE WHEN i %% 50 = 0 THEN 'weekly job report' END,
       ts - (i %% 97) * interval '20 milliseconds' - (i %% 13) * interval '50 milliseconds',  -- waited up to 2 s
       ts - (i %% 13) * interval '50 milliseconds', ts  -- and ran up to 0.6 s
FROM (SELECT i, %s - i * interval '1 second' AS ts FROM generate_series(%s, %s) AS i) AS rows
"""
JOBS_FILL = """
INSERT INTO jobs_jobrecord (result_id, launched_by_id, origin, arguments, queue, attempts, last_error)
SELECT id, %s, 'api', jsonb_build_object('args', '[]'::jsonb, 'kwargs', jsonb_build_object('x', 4, 'y', 4, 'n', id)),
       'default', 1, ''
FROM django_celery_results_taskresult WHERE id > %s
"""


def results_fill(first: int, last: int, *, now: datetime, launched_by=None) -> None:
    """Add made-up results numbered first to last (the last one `last` seconds before `now`), each
    with its job record, and VACUUM ANALYZE both tables as autovacuum would have."""
    before = TaskResult.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute(RESULTS_FILL, [now, first, last])
        cursor.execute(JOBS_FILL, [launched_by.pk if launched_by else None, before])
        cursor.execute("VACUUM ANALYZE django_celery_results_taskresult")
        cursor.execute("VACUUM ANALYZE jobs_jobrecord")


def database_url() -> str:
    """DATABASE_URL for the database this process uses now, to hand to worker subprocesses."""
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"


@contextmanager
def throwaway_database(suffix: str):
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_{suffix}"
    original_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)


@contextmanager
def database_copy(suffix: str):
    """A copy of the current database (CREATE DATABASE … TEMPLATE), which this process uses inside
    the block; dropped after it."""
    original = connection.settings_dict["NAME"]
    copy = f"{original}_{suffix}"
    quote_name = connection.ops.quote_name
    connection.close()  # a template database must have no other session
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(copy)}")
        cursor.execute(f"CREATE DATABASE {quote_name(copy)} TEMPLATE {quote_name(original)}")
    connection.settings_dict["NAME"] = copy
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(copy)}")
