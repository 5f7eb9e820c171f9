"""Upgrading a database from the layout before the engine was split off keeps every row, and a
new database gets the seeds' schedules."""
import json

import psycopg2
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.test import TestCase, TransactionTestCase, tag
from django_celery_beat.models import PeriodicTask

OLD_LAYOUT = ("jobs", "0009_stale_jobs_schedule")  # the last migration of the single-app layout
NEW_APPS = ("accounts", "contacts", "reports", "examples")

# One row in every table the old jobs app had, written as that version wrote them.
OLD_ROWS = """
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                       date_joined) VALUES (1, '!', false, 'ada', '', '', 'ada@x.io', false, true, now());
INSERT INTO jobs_apitoken (id, user_id, name, prefix, key_hash, created_at) VALUES (1, 1, 'ci', 'abcd1234', 'h', now());
INSERT INTO jobs_emaildelivery (id, key, recipient, created_at) VALUES (1, 'activation:1', 'ada@x.io', now());
INSERT INTO jobs_contact (id, email, name, phone, updated_at) VALUES (1, 'bo@x.io', 'Bo', '', now());
INSERT INTO jobs_contactimport (id, file, original_name, uploaded_by_id, uploaded_at, rows, imported, invalid, task_id)
    VALUES (1, 'imports/a.csv', 'a.csv', 1, now(), 2, 1, 1, 't1');
INSERT INTO jobs_importrowerror (id, contact_import_id, line, reason, raw) VALUES (1, 1, 3, 'bad', 'x,y');
INSERT INTO jobs_report (id, file, days, created_at) VALUES (1, 'reports/r.csv', 7, now());
INSERT INTO jobs_probe (id, key, runs, first_at, last_at) VALUES (1, 'k', 2, now(), now());
INSERT INTO django_celery_results_taskresult (id, task_id, status, content_type, content_encoding, date_created, date_done)
    VALUES (1, 't1', 'SUCCESS', 'application/json', 'utf-8', now(), now());
INSERT INTO jobs_jobrecord (result_id, launched_by_id, origin, arguments, queue, attempts, last_error)
    VALUES (1, 1, 'api', '{"args": [], "kwargs": {"import_id": 1}}', 'long', 1, '');
INSERT INTO jobs_jobaction (id, job_id, kind, actor_id, created_at, detail) VALUES (1, 1, 'retry', 1, now(), 'as t2');
INSERT INTO django_content_type (app_label, model) VALUES ('jobs', 'contact');
INSERT INTO auth_permission (name, content_type_id, codename)
    SELECT 'Can view contact', id, 'view_contact' FROM django_content_type WHERE app_label = 'jobs' AND model = 'contact';
INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT 1, id FROM auth_permission WHERE codename = 'view_contact';
DELETE FROM django_celery_beat_periodictask WHERE name = 'add 16 + 16 every 30 seconds';
"""

# Each table of the new layout, with the row it must hold afterwards.
NEW_ROWS = {
    "accounts_apitoken": "SELECT name FROM accounts_apitoken",
    "accounts_emaildelivery": "SELECT key FROM accounts_emaildelivery",
    "contacts_contact": "SELECT email FROM contacts_contact",
    "contacts_contactimport": "SELECT original_name FROM contacts_contactimport",
    "contacts_importrowerror": "SELECT reason FROM contacts_importrowerror",
    "reports_report": "SELECT days FROM reports_report",
    "examples_probe": "SELECT runs FROM examples_probe",
    "jobs_jobrecord": "SELECT queue FROM jobs_jobrecord",
    "jobs_jobaction": "SELECT detail FROM jobs_jobaction WHERE record_id = 1",
    "permission": "SELECT ct.app_label FROM auth_user_user_permissions up JOIN auth_permission p ON p.id = up.permission_id "
                  "JOIN django_content_type ct ON ct.id = p.content_type_id",
}
EXPECTED = {
    "accounts_apitoken": "ci", "accounts_emaildelivery": "activation:1", "contacts_contact": "bo@x.io",
    "contacts_contactimport": "a.csv", "contacts_importrowerror": "bad", "reports_report": 7, "examples_probe": 2,
    "jobs_jobrecord": "long", "jobs_jobaction": "as t2", "permission": "contacts",
}


class OwnDatabaseTestCase(TransactionTestCase):
    """On an empty database of its own, to migrate with Django's migration executor."""

    def setUp(self):
        # The test's connection, pointed at an empty database for the length of the test.
        test_database = connection.settings_dict["NAME"]
        database = f"{test_database}_upgrade"
        # WITH (FORCE): a pooler in front of PostgreSQL (PgBouncer) may still hold a connection to it.
        self.admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"')
        self.addCleanup(self.admin_sql, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.addCleanup(self.use_database, test_database)
        self.use_database(database)

    def use_database(self, name):
        connection.close()
        connection.settings_dict["NAME"] = name

    def admin_sql(self, *statements):
        db = connection.settings_dict
        admin = psycopg2.connect(dbname="postgres", user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
                                 port=db["PORT"])
        admin.autocommit = True  # CREATE and DROP DATABASE run outside a transaction
        try:
            with admin.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            admin.close()

    def migrate(self, targets=(), *, replace_migrations=True):
        """Migrate to `targets` ((app, migration), or (app, None) for none of its migrations), the
        other apps to their newest."""
        executor = MigrationExecutor(connection)
        executor.loader = MigrationLoader(connection, replace_migrations=replace_migrations)
        apps_named = {app for app, _ in targets}
        others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in apps_named]
        executor.migrate([*targets, *others])


@tag("integration")
class LayoutUpgradeTests(OwnDatabaseTestCase):
    def test_an_old_database_migrates_to_the_new_layout_with_every_row(self):
        # The old migrations themselves, not the squashed one a new database would get.
        self.migrate([OLD_LAYOUT, *((app, None) for app in NEW_APPS)], replace_migrations=False)
        with connection.cursor() as cursor:
            cursor.execute(OLD_ROWS)

        new = MigrationExecutor(connection)
        plan = [(migration.app_label, migration.name) for migration, _ in new.migration_plan(new.loader.graph.leaf_nodes())]
        self.assertEqual(plan[0], ("jobs", "0010_move_models_to_apps"))  # not the squashed migration
        new.migrate(new.loader.graph.leaf_nodes())

        with connection.cursor() as cursor:
            found = {}
            for table, query in NEW_ROWS.items():
                cursor.execute(query)
                found[table] = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'jobs\\_%%'")
            engine_tables = {row[0] for row in cursor.fetchall()}
            cursor.execute("SELECT name FROM django_celery_beat_periodictask ORDER BY name")
            schedules = [row[0] for row in cursor.fetchall()]
        self.assertEqual(found, {table: [value] for table, value in EXPECTED.items()})
        # Every engine model's table is made by the migrations, and nothing else.
        models = apps.get_app_config("jobs").get_models(include_auto_created=True)
        self.assertEqual(engine_tables, {model._meta.db_table for model in models if not model._meta.proxy})
        self.assertIn("jobs_workflowstep_parents", engine_tables)
        # The seeds' schedules are not made again: one deleted before the upgrade stays deleted.
        self.assertEqual(schedules, ["count finished jobs for the charts", "fail jobs whose worker was lost",
                                     "fetch a page twice a day", "repair running workflows", "weekly job report"])


class NewDatabaseSeedTests(TestCase):
    def test_the_seeds_schedules_are_installed_and_editable(self):
        add = PeriodicTask.objects.get(name="add 16 + 16 every 30 seconds")
        self.assertEqual((add.task, json.loads(add.args), add.enabled), ("jobs.add", [16, 16], False))
        self.assertEqual((add.interval.every, add.interval.period), (30, "seconds"))
        fetch = PeriodicTask.objects.get(name="fetch a page twice a day")
        self.assertEqual((fetch.task, fetch.enabled, fetch.crontab.hour), ("jobs.fetch_url", False, "7,19"))
        report = PeriodicTask.objects.get(name="weekly job report")
        crontab = report.crontab
        self.assertEqual((report.task, report.enabled), ("jobs.build_report", True))
        self.assertEqual((crontab.minute, crontab.hour, crontab.day_of_week), ("30", "7", "1"))
        self.assertEqual(str(crontab.timezone), settings.TIME_ZONE)
        self.assertTrue(PeriodicTask.objects.filter(name="fail jobs whose worker was lost").exists())


@tag("integration")
class JobStatsUpgradeTests(OwnDatabaseTestCase):
    def test_statistics_counted_a_row_per_state_are_folded_into_a_row_per_job(self):
        self.migrate([("jobs", "0019_workflow_name_help")])
        with connection.cursor() as cursor:
            cursor.execute("""
                INSERT INTO jobs_jobstats (period, start, task_name, queue, status, count, wait, run) VALUES
                ('minute', '2026-12-01 10:00Z', 'jobs.add', 'default', 'SUCCESS', 7, '{"3": 7}', '{"9": 7}'),
                ('minute', '2026-12-01 10:00Z', 'jobs.add', 'default', 'FAILURE', 2, '{"3": 1, "4": 1}', '{"9": 2}'),
                ('minute', '2026-12-01 10:00Z', 'jobs.add', 'long', 'SUCCESS', 1, '{"5": 1}', '{"9": 1}'),
                ('minute', '2026-12-01 10:01Z', 'jobs.add', 'default', 'REVOKED', 3, '{}', '{}'),
                ('total', '1970-01-01 00:00Z', 'jobs.add', 'default', 'SUCCESS', 70, '{"3": 70}', '{"9": 70}'),
                ('total', '1970-01-01 00:00Z', 'jobs.add', 'default', 'FAILURE', 20, '{"4": 20}', '{"8": 20}')
            """)
        self.migrate()
        with connection.cursor() as cursor:
            cursor.execute("SELECT period, start::text, queue, succeeded, failed, revoked, wait, run FROM jobs_jobstats "
                           "ORDER BY period, start, queue")
            rows = [(*row[:6], json.loads(row[6]), json.loads(row[7])) for row in cursor.fetchall()]
        self.assertEqual(rows, [
            ("minute", "2026-12-01 10:00:00+00", "default", 7, 2, 0, {"3": 8, "4": 1}, {"9": 9}),
            ("minute", "2026-12-01 10:00:00+00", "long", 1, 0, 0, {"5": 1}, {"9": 1}),
            ("minute", "2026-12-01 10:01:00+00", "default", 0, 0, 3, {}, {}),
            ("total", "1970-01-01 00:00:00+00", "default", 70, 20, 0, {"3": 70, "4": 20}, {"9": 70, "8": 20}),
        ])
