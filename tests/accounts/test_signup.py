"""Sign-up and the activation email job, with SMTP at the edge."""
import re
import smtplib
import time
from datetime import timedelta
from unittest import mock

from django.contrib.auth.models import User
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

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
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post("/accounts/signup/", {
                "email": "Ada@Example.com", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase",
                **fields,
            })
        self.callbacks = callbacks
        return response

    def test_signup_creates_an_inactive_user_and_queues_the_email_with_its_id(self):
        task = find_job("jobs.send_activation_email")
        response = self.signup()
        self.assertContains(response, "If <strong>ada@example.com</strong> can be registered, an activation link")
        user = User.objects.get(username="ada@example.com")
        self.assertEqual(user.email, "ada@example.com")
        self.assertFalse(user.is_active)
        with mock.patch.object(task, "apply_async") as apply_async:
            for callback in self.callbacks:
                callback()
        apply_async.assert_called_once_with((user.pk,), {})

    def test_in_development_the_answer_says_where_the_printed_email_is(self):
        with self.settings(EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend"):
            self.assertContains(self.signup(), "the <code>worker-email</code> lines of <code>make run</code>")
        with self.settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend"):
            self.assertNotContains(self.signup(email="bo@example.com"), "worker-email")

    def test_the_sign_in_form_asks_for_the_email_address(self):
        page = self.client.get("/accounts/login/")
        self.assertContains(page, '<label for="id_username">Email address:</label>', html=True)
        self.assertContains(page, 'type="email"')
        self.assertNotContains(page, "Username")

    def test_the_answer_does_not_tell_whether_an_address_is_registered(self):
        """A registered address gets the same page as a new one, and no email is queued."""
        new = self.signup(email="new@example.com").content.decode().replace("new@example.com", "ADDRESS")
        User.objects.create_user("old", email="ada@example.com")
        taken = self.signup().content.decode().replace("ada@example.com", "ADDRESS")
        strip = lambda page: re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)  # noqa: E731
        self.assertEqual(strip(taken), strip(new))
        self.assertEqual(self.callbacks, [])
        self.assertEqual(User.objects.filter(email__iexact="ada@example.com").count(), 1)

    def test_an_unactivated_sign_up_frees_its_address_once_its_link_expired(self):
        self.signup()
        first = User.objects.get(username="ada@example.com")
        self.signup(password1="another-long-phrase", password2="another-long-phrase")
        self.assertEqual(User.objects.get(username="ada@example.com"), first)  # its link still works: kept
        User.objects.filter(pk=first.pk).update(date_joined=timezone.now() - timedelta(days=4))
        self.signup(password1="another-long-phrase", password2="another-long-phrase")
        second = User.objects.get(username="ada@example.com")
        self.assertNotEqual(second.pk, first.pk)
        self.assertTrue(second.check_password("another-long-phrase"))
        self.assertEqual(len(self.callbacks), 1)

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

        # A link activates once: an account deactivated since (banned) stays deactivated.
        User.objects.filter(pk=user.pk).update(is_active=False)
        response = self.client.get(link.removeprefix("http://localhost:8000"), follow=True)
        self.assertContains(response, "This activation link was used already.")
        self.assertFalse(User.objects.get(pk=user.pk).is_active)

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
    def test_sign_up_is_limited_like_launches_and_a_forged_address_does_not_help(self):
        """Each sign-up sends an email: past JOBS_LAUNCH_RATE from one address, 429 and no account."""
        with self.captureOnCommitCallbacks():
            codes = [self.client.post("/accounts/signup/", {
                "email": f"new{n}@example.com", "password1": "a-long-pass-phrase",
                "password2": "a-long-pass-phrase"}, **headers).status_code
                for n, headers in enumerate([{}, {}, {}, {}, {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}])]
        # Another X-Forwarded-For is not another client: no proxy is configured to set it.
        self.assertEqual(codes, [200, 200, 200, 429, 429])
        self.assertFalse(User.objects.filter(username__in=["new3@example.com", "new4@example.com"]).exists())

    @override_settings(NINJA_NUM_PROXIES=1)
    def test_behind_a_proxy_the_address_it_forwards_is_the_client(self):
        with self.captureOnCommitCallbacks():
            codes = [self.client.post("/accounts/signup/", {
                "email": f"new{n}@example.com", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n // 4}").status_code for n in range(5)]
        self.assertEqual(codes, [200, 200, 200, 429, 200])


class SignupBrokerDownTests(TransactionTestCase):
    """Real commits: the email is queued when the account commits, inside the request."""

    def test_sign_up_while_the_broker_is_down_is_a_clear_503_and_keeps_nothing(self):
        with mock.patch.object(find_job("jobs.send_activation_email"), "apply_async",
                               side_effect=OperationalError("connection refused")):
            response = self.client.post("/accounts/signup/", {
                "email": "ada@example.com", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"})
        self.assertContains(response, "the job queue is unavailable", status_code=503)
        self.assertFalse(User.objects.filter(email="ada@example.com").exists())  # free to sign up again


class SignInBeforeActivationTests(TestCase):
    def test_the_right_password_on_an_unactivated_account_says_to_activate(self):
        User.objects.create_user("ada@example.com", email="ada@example.com", password="a-long-pass-phrase",
                                 is_active=False)
        response = self.client.post("/accounts/login/", {"username": "ada@example.com",
                                                         "password": "a-long-pass-phrase"})
        self.assertContains(response, "This account is not active yet: open the activation link")
        response = self.client.post("/accounts/login/", {"username": "ada@example.com", "password": "wrong"})
        self.assertContains(response, "Please enter a correct email address and password")
