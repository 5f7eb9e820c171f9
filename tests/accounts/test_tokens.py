"""API tokens: issued by a command, used as bearer tokens, listed and revoked in the admin."""
from io import StringIO

from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import TestCase
from django_celery_results.models import TaskResult

from accounts.models import ApiToken
from accounts.services import api_token_create


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
        response = self.client.get("/admin/accounts/apitoken/")
        self.assertContains(response, "ci")
        self.assertContains(response, ApiToken.objects.get().prefix)


class BearerTokenTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("alice")
        _, self.token = api_token_create(user=self.user, name="tests")

    def launch(self, authorization):
        with self.captureOnCommitCallbacks():
            return self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                    content_type="application/json", HTTP_AUTHORIZATION=authorization)

    def test_a_token_launches_and_reads_as_its_user(self):
        response = self.launch(f"Bearer {self.token}")
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.json()["launched_by"], "alice")
        body = self.client.get(response["Location"], HTTP_AUTHORIZATION=f"Bearer {self.token}").json()
        self.assertEqual(body["status"], "PENDING")

    def test_unknown_and_inactive_users_tokens_are_refused(self):
        response = self.launch("Bearer not-a-token")
        self.assertEqual(response.status_code, 401)
        self.assertIn("Authentication required", response.json()["detail"])
        User.objects.filter(pk=self.user.pk).update(is_active=False)
        self.assertEqual(self.launch(f"Bearer {self.token}").status_code, 401)
        self.assertFalse(TaskResult.objects.exists())


class TokenPageTests(TestCase):
    """People make, see and revoke their own tokens; a token is shown once."""

    def setUp(self):
        self.user = User.objects.create_user("alice")
        self.client.force_login(self.user)

    def test_create_use_and_revoke_a_token(self):
        page = self.client.post("/accounts/tokens/", {"name": "laptop"})
        key = page.context["created"]
        self.assertContains(page, key)
        self.assertNotContains(self.client.get("/accounts/tokens/"), key)  # never again
        self.assertEqual(self.client.get("/api/jobs/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code, 200)
        token = ApiToken.objects.get(user=self.user)
        other = ApiToken.objects.create(user=User.objects.create_user("bob"), name="b", prefix="x", key_hash="h")
        self.assertEqual(self.client.post(f"/accounts/tokens/{other.pk}/revoke/").status_code, 404)
        self.client.post(f"/accounts/tokens/{token.pk}/revoke/")
        self.assertFalse(ApiToken.objects.filter(user=self.user).exists())
        self.client.logout()
        self.assertEqual(self.client.get("/api/jobs/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code, 401)

    def test_the_api_docs_send_the_csrf_token_for_a_signed_in_person(self):
        page = self.client.get("/api/docs")
        self.assertContains(page, 'data-api-csrf="true"')
        self.assertRegex(page.content.decode(), r'data-csrf-token="[^"]+"')
