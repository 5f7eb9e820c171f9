"""Sign-up and the activation email job, with SMTP at the edge."""
import smtplib
import time
from unittest import mock

from django.contrib.auth.models import User
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import TestCase, override_settings

from accounts import emails
from accounts.models import EmailDelivery
from jobs.catalog import find_job


class FailingSMTPBackend(EmailBackend):
    """An SMTP server that drops the connection: the outside world, failing."""

    calls = 0

    def send_messages(self, messages):
        type(self).calls += 1
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class SignupTests(TestCase):
    def signup(self, **fields):
        return self.client.post("/accounts/signup/", {
            "username": "ada", "email": "Ada@Example.com", "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase", **fields,
        })

    def test_signup_creates_an_inactive_user_and_queues_the_email_with_its_id(self):
        task = find_job("jobs.send_activation_email")
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.signup()
        self.assertContains(response, "We sent an activation link to <strong>ada@example.com</strong>")
        user = User.objects.get(username="ada")
        self.assertFalse(user.is_active)
        with mock.patch.object(task, "apply_async") as apply_async:
            for callback in callbacks:
                callback()
        apply_async.assert_called_once_with((user.pk,), {})

    def test_an_address_with_an_account_is_refused(self):
        User.objects.create_user("old", email="ada@example.com")
        self.assertContains(self.signup(), "An account with this email address exists already.")

    def test_the_email_is_sent_once_and_its_link_activates_the_account(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        self.assertTrue(emails.activation_email_send(user_id=user.pk))
        self.assertFalse(emails.activation_email_send(user_id=user.pk))  # a redelivered task
        self.assertEqual(len(mail.outbox), 1)
        link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/activate/" in line)
        self.assertTrue(link.startswith("http://localhost:8000/accounts/activate/"))
        response = self.client.get(link.removeprefix("http://localhost:8000"), follow=True)
        self.assertContains(response, "Your account is active.")
        self.assertTrue(User.objects.get(pk=user.pk).is_active)

    def test_expired_and_altered_links_are_refused(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        token = emails.activation_link(user).rsplit("/", 2)[-2]
        with mock.patch("django.core.signing.time.time", return_value=time.time() + 4 * 86400):
            response = self.client.get(f"/accounts/activate/{token}/", follow=True)
        self.assertContains(response, "This activation link has expired.")
        response = self.client.get(f"/accounts/activate/{token}x/", follow=True)
        self.assertContains(response, "This activation link is not valid.")
        self.assertFalse(User.objects.get(pk=user.pk).is_active)

    @override_settings(EMAIL_BACKEND="tests.accounts.test_signup.FailingSMTPBackend")
    def test_smtp_errors_are_retried_a_bounded_number_of_times_then_fail(self):
        user = User.objects.create_user("ada", email="ada@example.com", is_active=False)
        FailingSMTPBackend.calls = 0
        result = find_job("jobs.send_activation_email").apply(args=[user.pk])  # retries run at once, eagerly
        self.assertEqual(result.state, "FAILURE")
        self.assertIsInstance(result.result, smtplib.SMTPServerDisconnected)
        self.assertEqual(FailingSMTPBackend.calls, 1 + 5)
        self.assertFalse(EmailDelivery.objects.filter(sent_at__isnull=False).exists())

    def test_the_email_job_keeps_no_result_but_keeps_failures(self):
        task = find_job("jobs.send_activation_email")
        self.assertTrue(task.ignore_result)
        self.assertTrue(task.store_errors_even_if_ignored)
        self.assertTrue(task.retry_jitter)


@override_settings(JOBS_LAUNCH_RATE="3/m")
class SignupRateTests(TestCase):
    def test_sign_up_is_limited_like_launches(self):
        """Each sign-up sends an email: past JOBS_LAUNCH_RATE from one address, 429 and no account."""
        with self.captureOnCommitCallbacks():
            codes = [self.client.post("/accounts/signup/", {
                "username": f"new{n}", "email": f"new{n}@example.com",
                "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}).status_code for n in range(4)]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertFalse(User.objects.filter(username="new3").exists())
