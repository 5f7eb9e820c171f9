from io import StringIO

from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import TestCase

from jobs.models import ApiToken


class TokenCreateTests(TestCase):
    def test_prints_a_token_that_authenticates_and_stores_only_its_hash(self):
        user = User.objects.create_user("carol")
        out = StringIO()
        call_command("token_create", "carol", "--name", "nightly import", stdout=out)
        key = out.getvalue().strip()
        token = ApiToken.objects.get(user=user)
        self.assertEqual((token.name, token.prefix), ("nightly import", key[:8]))
        self.assertNotIn(key, token.key_hash)
        response = self.client.get("/api/jobs/catalog/", HTTP_AUTHORIZATION=f"Bearer {key}")
        self.assertEqual(response.status_code, 200)
        token.refresh_from_db()
        self.assertIsNotNone(token.last_used_at)

    def test_unknown_user_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "No user named 'nobody'"):
            call_command("token_create", "nobody")

    def test_tokens_are_listed_in_the_admin(self):
        admin = User.objects.create_superuser("root", password="pw")
        call_command("token_create", "root", "--name", "ci", stdout=StringIO())
        self.client.force_login(admin)
        response = self.client.get("/admin/jobs/apitoken/")
        self.assertContains(response, "ci")
        self.assertContains(response, ApiToken.objects.get().prefix)


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
