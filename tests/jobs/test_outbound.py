"""Requests to addresses someone else chose (the fetch job's URL, alert webhooks): public
addresses only, every IPv6 form of an IPv4 address judged by that address, credentials never logged."""
from datetime import timedelta

from celery import states
from django.contrib.auth.models import User
from django.test import SimpleTestCase, TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from jobs import outbound
from jobs.alerts.services import alerts_evaluate
from jobs.models import AlertRule
from jobs.stats.services import job_stats_count
from tests.jobs.stats.test_stats import finished
from tests.local_http import LocalServer
from tests.users import grant


class AddressTests(SimpleTestCase):
    def test_public_addresses_are_allowed(self):
        for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::5db8:d70e"):
            with self.subTest(address=address):
                self.assertTrue(outbound.address_allowed(address))

    def test_internal_addresses_are_refused_in_every_form(self):
        for address in (
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "::1", "fe80::1%eth0", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
            "::7f00:1",  # IPv4-compatible 127.0.0.1
            "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 of 127.0.0.1 and of the metadata address
            "64:ff9b:1::7f00:1",  # NAT64, local-use prefix
            "2002:7f00:1::", "2002:a9fe:a9fe::1",  # 6to4 of 127.0.0.1 and 169.254.169.254
            "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (stored inverted)
            "224.0.0.1", "ff02::1",
        ):
            with self.subTest(address=address):
                self.assertFalse(outbound.address_allowed(address))

    def test_an_allow_list_admits_its_networks(self):
        self.assertTrue(outbound.address_allowed("10.1.2.3", ["10.1.0.0/16"]))
        self.assertTrue(outbound.address_allowed("::ffff:10.1.2.3", ["10.1.0.0/16"]))
        self.assertFalse(outbound.address_allowed("10.2.0.1", ["10.1.0.0/16"]))

    def test_urls_lose_their_credentials_in_messages(self):
        self.assertEqual(outbound.url_redacted("http://guest:guest@127.0.0.1:15672/api/overview"),
                         "http://127.0.0.1:15672/api/overview")
        with self.assertRaises(outbound.AddressRefused) as refused:
            outbound.url_check("http://guest:s3cret@127.0.0.1:15672/api/overview")
        self.assertNotIn("s3cret", str(refused.exception))


class WebhookTests(TestCase):
    def setUp(self):
        self.client.force_login(grant(User.objects.create_user("ops", is_staff=True), "jobs.add_alertrule",
                                      "jobs.change_alertrule", "jobs.view_alertrule"))

    def rule_form(self, url: str) -> dict:
        return {"name": "failing", "enabled": "on", "task_name": "", "measure": "failure_rate", "threshold": "10",
                "minutes": "5", "webhook_url": url, "incidents-TOTAL_FORMS": "0", "incidents-INITIAL_FORMS": "0"}

    def test_a_webhook_into_the_network_is_refused_when_saved(self):
        for url in ("http://127.0.0.1:8000/hook", "http://guest:guest@127.0.0.1:15672/api/overview",
                    "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
                    "http://localhost/", "ftp://example.org/"):
            with self.subTest(url=url):
                response = self.client.post(reverse("admin:jobs_alertrule_add"), self.rule_form(url))
                errors = response.context["adminform"].form.errors["webhook_url"]
                self.assertIn("Webhooks reach public addresses only", str(errors))
                self.assertNotIn("guest:guest", str(errors))
        self.assertFalse(AlertRule.objects.exists())
        with override_settings(ALERT_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.1/32"]):
            response = self.client.post(reverse("admin:jobs_alertrule_add"), self.rule_form("http://127.0.0.1:9/hook"))
        self.assertEqual(response.status_code, 302)

    def fire(self, url: str):
        """An incident of a rule whose webhook is `url` (saved around the form: raw SQL, an old row)."""
        AlertRule.objects.create(name="failing", measure="failure_rate", threshold=10, minutes=5,
                                 email_staff=False, webhook_url=url)
        now = timezone.now()
        for _ in range(5):
            finished("testapp.add", states.FAILURE, done=now - timedelta(minutes=1), wait=0.1, run=0.1)
        job_stats_count(now=now)
        with self.assertLogs("jobs.alerts.services", "ERROR") as logs:
            alerts_evaluate(now=now)
        return "\n".join(logs.output)

    def test_a_webhook_into_the_network_is_refused_when_sent_and_its_credentials_are_not_logged(self):
        with LocalServer() as server:
            logged = self.fire(server.url("/private").replace("http://", "http://guest:s3cret@"))
            self.assertEqual(server.requests, [])
        self.assertIn("was refused: it is not a public address", logged)
        self.assertNotIn("s3cret", logged)

    @override_settings(ALERT_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.1/32"])
    def test_a_webhook_follows_no_redirect_and_its_failure_logs_neither_credentials_nor_answer(self):
        with LocalServer() as server:
            logged = self.fire(server.url("/redirect?to=http://169.254.169.254/"))
            self.assertEqual(server.requests, ["/redirect?to=http://169.254.169.254/"])
        self.assertIn("answered 307", logged)
        AlertRule.objects.all().delete()
        with LocalServer() as server:
            logged = self.fire(server.url("/private").replace("http://", "http://guest:s3cret@"))
            self.assertEqual(server.requests, ["/private"])
        self.assertIn("answered 401", logged)
        self.assertNotIn("s3cret", logged)
        self.assertNotIn("not authorised", logged)
