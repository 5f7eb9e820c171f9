"""The engine's commands and admin pages."""
from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase


class DbCreateTests(TestCase):
    def test_is_idempotent_on_an_existing_database(self):
        out = StringIO()
        call_command("db_create", stdout=out)
        self.assertIn("exists", out.getvalue())


class AdminTests(TestCase):
    def test_results_and_schedules_are_in_the_admin(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        for path in ("/admin/django_celery_results/taskresult/", "/admin/django_celery_beat/periodictask/"):
            with self.subTest(path=path):
                self.assertEqual(self.client.get(path).status_code, 200)
