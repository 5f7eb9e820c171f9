import os
import runpy
import shutil
import tempfile
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

SETTINGS_FILE = Path(settings.BASE_DIR) / "site_config" / "settings.py"


def load_settings(environment: dict[str, str]) -> dict:
    """Evaluate settings.py with exactly `environment`, away from any local .env file."""
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / "site_config" / "settings.py"
        copy.parent.mkdir()
        shutil.copy(SETTINGS_FILE, copy)
        with mock.patch.dict(os.environ, environment, clear=True):
            return runpy.run_path(str(copy))


class EnvironmentSettingsTests(SimpleTestCase):
    def test_debug_is_off_and_secret_key_required_by_default(self):
        """With nothing set, settings refuse to load rather than run with a known key."""
        with self.assertRaisesMessage(ImproperlyConfigured, "DJANGO_SECRET_KEY"):
            load_settings({})

    def test_production_values_come_from_the_environment(self):
        """Debug stays off, and hosts and the database come from their variables."""
        loaded = load_settings({
            "DJANGO_SECRET_KEY": "s" * 50,
            "DJANGO_ALLOWED_HOSTS": "jobs.example.com,api.example.com",
            "DATABASE_URL": "postgres://app:pw@db.internal:5433/jobsdb",
        })
        self.assertIs(loaded["DEBUG"], False)
        self.assertEqual(loaded["ALLOWED_HOSTS"], ["jobs.example.com", "api.example.com"])
        database = loaded["DATABASES"]["default"]
        self.assertEqual((database["HOST"], database["PORT"], database["NAME"]), ("db.internal", 5433, "jobsdb"))

    def test_debug_on_request_needs_no_secret_key(self):
        loaded = load_settings({"DJANGO_DEBUG": "true"})
        self.assertIs(loaded["DEBUG"], True)
        self.assertTrue(loaded["SECRET_KEY"])

    def test_defaults_point_at_local_services(self):
        loaded = load_settings({"DJANGO_SECRET_KEY": "s" * 50})
        self.assertEqual(loaded["CELERY_BROKER_URL"], "amqp://guest:guest@localhost:5672//")
        self.assertEqual(loaded["CELERY_RESULT_BACKEND"], "jobs.results:DatabaseBackend")
        self.assertEqual(loaded["DATABASES"]["default"]["NAME"], "jobs")
        self.assertEqual(loaded["CACHES"]["default"]["LOCATION"], "redis://127.0.0.1:6379/0")


class CeleryConfigurationTests(SimpleTestCase):
    """The Celery app the worker runs with, as configured from Django settings."""

    def setUp(self):
        from site_config import celery_app

        self.conf = celery_app.conf

    def test_results_are_stored_in_the_database_with_their_arguments(self):
        from django_celery_results.backends import DatabaseBackend

        from site_config import celery_app

        self.assertIsInstance(celery_app.backend, DatabaseBackend)
        self.assertTrue(self.conf.result_extended)
        self.assertTrue(self.conf.task_track_started)

    def test_only_json_is_accepted(self):
        self.assertEqual(list(self.conf.accept_content), ["json"])
        self.assertEqual(list(self.conf.result_accept_content), ["json"])
        self.assertEqual(self.conf.task_serializer, "json")

    def test_delivery_is_safe(self):
        """Late acks, one task reserved per process, confirms, durable queues, a bounded run."""
        self.assertTrue(self.conf.task_acks_late)
        self.assertEqual(self.conf.worker_prefetch_multiplier, 1)
        self.assertTrue(self.conf.broker_transport_options["confirm_publish"])
        self.assertTrue(all(queue.durable for queue in self.conf.task_queues))
        self.assertEqual(self.conf.task_default_delivery_mode, "persistent")
        rabbitmq_consumer_timeout = 30 * 60
        self.assertLess(self.conf.task_time_limit, rabbitmq_consumer_timeout)
        self.assertLess(self.conf.task_soft_time_limit, self.conf.task_time_limit)

    def test_beat_reads_the_admin_editable_schedule(self):
        from celery.utils.imports import symbol_by_name
        from django_celery_beat.schedulers import DatabaseScheduler

        self.assertTrue(issubclass(symbol_by_name(self.conf.beat_scheduler), DatabaseScheduler))
        self.assertEqual(self.conf.timezone, settings.TIME_ZONE)


class DeployCheckTests(SimpleTestCase):
    def test_check_deploy_is_clean_with_production_variables(self):
        """`manage.py check --deploy` finds nothing with DJANGO_HTTPS on and a real key (CI runs it too)."""
        import secrets
        import subprocess
        import sys

        environment = {
            "PATH": os.environ["PATH"], "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_HTTPS": "true",
            "DJANGO_ALLOWED_HOSTS": "jobs.example.com",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("no issues", result.stdout)

    def test_https_switch_sets_the_secure_settings(self):
        loaded = load_settings({"DJANGO_SECRET_KEY": "s" * 50, "DJANGO_HTTPS": "true", "DJANGO_BEHIND_PROXY": "true"})
        self.assertTrue(loaded["SECURE_SSL_REDIRECT"] and loaded["SESSION_COOKIE_SECURE"] and loaded["CSRF_COOKIE_SECURE"])
        self.assertEqual(loaded["SECURE_HSTS_SECONDS"], 365 * 24 * 3600)
        self.assertEqual(loaded["SECURE_PROXY_SSL_HEADER"], ("HTTP_X_FORWARDED_PROTO", "https"))
        self.assertNotIn("SECURE_PROXY_SSL_HEADER", load_settings({"DJANGO_SECRET_KEY": "s" * 50}))
        self.assertEqual((loaded["NINJA_NUM_PROXIES"], loaded["AXES_IPWARE_PROXY_COUNT"]), (1, 1))

    def test_forwarded_addresses_are_trusted_only_behind_a_proxy_and_preload_is_its_own_choice(self):
        plain = load_settings({"DJANGO_SECRET_KEY": "s" * 50, "DJANGO_HTTPS": "true"})
        self.assertEqual((plain["NINJA_NUM_PROXIES"], plain["AXES_IPWARE_META_PRECEDENCE_ORDER"]), (0, ["REMOTE_ADDR"]))
        self.assertFalse(plain["SECURE_HSTS_PRELOAD"])
        two = load_settings({"DJANGO_SECRET_KEY": "s" * 50, "DJANGO_BEHIND_PROXY": "true", "DJANGO_PROXY_COUNT": "2"})
        self.assertEqual(two["NINJA_NUM_PROXIES"], 2)
        preload = load_settings({"DJANGO_SECRET_KEY": "s" * 50, "DJANGO_HTTPS": "true", "DJANGO_HSTS_PRELOAD": "true"})
        self.assertTrue(preload["SECURE_HSTS_PRELOAD"])
