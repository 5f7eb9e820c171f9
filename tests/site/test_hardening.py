"""What a careful attacker tried: sign-in guessing, headers, and the answers pages give."""
import re

from django.contrib.auth.models import User
from django.test import TestCase, override_settings

from accounts.services import api_token_create


@override_settings(AXES_FAILURE_LIMIT=5)
class SignInLockoutTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("ada", password="the-right-password")

    def sign_in(self, url, username="ada", password="wrong", address="198.51.100.7"):
        return self.client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)

    def assertLockedOut(self, url):
        self.assertEqual([self.sign_in(url).status_code for _ in range(5)], [200, 200, 200, 200, 429])
        response = self.sign_in(url, password="the-right-password")
        self.assertContains(response, "Too many failed sign-ins", status_code=429)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_wrong_passwords_lock_the_account_on_the_site(self):
        self.assertLockedOut("/accounts/login/")

    def test_wrong_passwords_lock_the_account_in_the_admin(self):
        User.objects.filter(pk=self.user.pk).update(is_staff=True)
        self.assertLockedOut("/admin/login/")

    def test_wrong_passwords_for_someone_else_on_the_same_address_do_not_lock_an_account_out(self):
        for _ in range(5):  # a colleague behind the same NAT, or a script
            self.sign_in("/accounts/login/", username="bob")
        self.assertEqual(self.sign_in("/accounts/login/", username="bob", password="x").status_code, 429)
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password").status_code, 302)

    def test_a_locked_out_person_still_signs_in_from_another_device_or_network(self):
        for _ in range(5):
            self.sign_in("/accounts/login/")  # someone guessing ada's password
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password").status_code, 429)
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password",
                                      address="192.0.2.1").status_code, 302)

    @override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=20)
    def test_one_address_spraying_many_accounts_is_locked_at_its_own_limit(self):
        for n in range(19):
            self.sign_in("/accounts/login/", username=f"someone{n}")
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password").status_code, 302)
        self.client.logout()
        for n in range(20):
            self.sign_in("/accounts/login/", username=f"someone{n}")
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password").status_code, 429)
        self.assertEqual(self.sign_in("/accounts/login/", password="the-right-password",
                                      address="192.0.2.1").status_code, 302)

    def test_a_forged_forwarded_for_header_does_not_reset_the_count(self):
        for n in range(50):
            self.client.post("/accounts/login/", {"username": f"someone{n}", "password": "x"},
                             REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        response = self.client.post("/accounts/login/", {"username": "ada", "password": "the-right-password"},
                                    REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.99")
        self.assertEqual(response.status_code, 429)


class HeaderTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("ada")

    def test_pages_send_a_content_security_policy_and_have_no_inline_script(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        for url in ("/jobs/", "/jobs/new/", "/accounts/login/", "/admin/django_celery_beat/periodictask/add/",
                    "/api/docs"):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                policy = response["Content-Security-Policy"]
                self.assertIn("script-src 'self'", policy)
                self.assertNotIn("unsafe-inline';", policy.split("script-src")[1].split(";")[0] + ";")
                inline = re.findall(rb"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", response.content)
                self.assertEqual(inline, [], "inline scripts would not run under the policy")

    def test_permissions_policy_on_every_answer(self):
        self.assertIn("camera=()", self.client.get("/accounts/login/")["Permissions-Policy"])

    def test_signed_in_pages_and_token_answers_are_not_cached(self):
        self.assertNotIn("no-store", self.client.get("/accounts/signup/").get("Cache-Control", ""))
        self.client.force_login(self.user)
        self.assertIn("no-store", self.client.get("/jobs/")["Cache-Control"])
        self.client.logout()
        _, token = api_token_create(user=self.user, name="t")
        response = self.client.get("/api/jobs/", HTTP_AUTHORIZATION=f"Bearer {token}")
        self.assertIn("no-store", response["Cache-Control"])
        self.assertIn("private", response["Cache-Control"])
