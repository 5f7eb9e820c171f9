"""Alert rules (an incident notifies once when it begins and once when it ends) and the Prometheus
endpoint (its access rule and what it exports)."""
import json
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import redis
import yaml
from celery import current_app as celery_app
from celery import states
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.test import TestCase, override_settings
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.alerts.services import alerts_evaluate
from jobs.models import AlertIncident, AlertRule
from jobs.queues.broker import dead_letter_queue_declare, job_queues_declare
from jobs.scheduling.beat import lock_name
from jobs.stats.services import job_stats_count
from tests.jobs.stats.test_stats import finished
from tests.local_http import LocalServer
from tests.users import grant


class AlertRuleTests(TestCase):
    def setUp(self):
        User.objects.create_user("ops", email="ops@example.org", is_staff=True)
        User.objects.create_user("ada", email="ada@example.org")  # not staff: not told
        self.now = timezone.now()

    def fail(self, count: int, *, minutes_ago: float = 1):
        for _ in range(count):
            finished("testapp.add", states.FAILURE, done=self.now - timedelta(minutes=minutes_ago), wait=0.1, run=0.1)

    def test_a_failure_rate_over_its_threshold_notifies_once_per_incident(self):
        rule = AlertRule.objects.create(name="add failing", task_name="testapp.add", measure="failure_rate",
                                        threshold=20, minutes=5)
        for _ in range(6):
            finished("testapp.add", states.SUCCESS, done=self.now - timedelta(minutes=2), wait=0.1, run=0.1)
        self.fail(4)  # 40%
        job_stats_count(now=self.now)
        with LocalServer() as hook, override_settings(ALERT_WEBHOOK_ALLOWED_NETWORKS=["127.0.0.1/32"]):
            rule.webhook_url = hook.url("/hook")
            rule.save()
            alerts_evaluate(now=self.now)
            alerts_evaluate(now=self.now + timedelta(minutes=1))  # still failing: no new notice
            self.assertEqual(len(mail.outbox), 1)
            self.assertEqual(mail.outbox[0].to, ["ops@example.org"])
            self.assertIn("add failing: firing (Failure rate, in % 40", mail.outbox[0].subject)
            self.assertEqual(len(hook.bodies), 1)
            payload = json.loads(hook.bodies[0])
            self.assertEqual((payload["state"], payload["job"], payload["value"]), ("firing", "testapp.add", 40.0))

            alerts_evaluate(now=self.now + timedelta(minutes=10))  # the failures left the window
            self.assertEqual([json.loads(body)["state"] for body in hook.bodies], ["firing", "resolved"])
        self.assertEqual(len(mail.outbox), 2)
        incident = AlertIncident.objects.get()
        self.assertEqual((incident.value, incident.ended_at is not None), (40.0, True))

    def test_too_few_jobs_never_fire_a_failure_rate(self):
        AlertRule.objects.create(name="any failing", measure="failure_rate", threshold=10, minutes=5)
        self.fail(2)
        job_stats_count(now=self.now)
        alerts_evaluate(now=self.now)
        self.assertFalse(AlertIncident.objects.exists())

    def test_a_long_queue_wait_fires_and_shows_on_the_overview(self):
        rule = AlertRule.objects.create(name="slow queue", measure="wait_p95", threshold=30, minutes=10,
                                        email_staff=True)
        for _ in range(3):
            finished("testapp.add", states.SUCCESS, done=self.now - timedelta(minutes=3), wait=120, run=1)
        job_stats_count(now=self.now)
        alerts_evaluate(now=self.now)
        self.assertTrue(rule.incidents.filter(ended_at__isnull=True).exists())
        self.client.force_login(grant(User.objects.get(username="ops"), "jobs.view_queue"))
        self.assertContains(self.client.get(reverse("admin:jobs_queue_changelist")), "Alert <a href=")

    def test_the_rule_form_refuses_what_cannot_work(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        response = self.client.post(reverse("admin:jobs_alertrule_add"), {
            "name": "x", "enabled": "on", "task_name": "no.such.job", "measure": "failure_rate", "threshold": "150",
            "minutes": "0", "webhook_url": "", "incidents-TOTAL_FORMS": "0", "incidents-INITIAL_FORMS": "0"})
        form = response.context["adminform"].form
        self.assertIn("Select a valid choice", str(form.errors["task_name"]))
        self.assertEqual(form.errors["threshold"], ["A failure rate is a percentage: give a threshold below 100."])
        self.assertIn("greater than or equal to 1", str(form.errors["minutes"]))
        self.assertEqual(form.non_field_errors(), ["Choose whom to tell: staff by email, a webhook, or both."])
        self.assertFalse(AlertRule.objects.exists())


class MetricsTests(TestCase):
    def setUp(self):
        finished("testapp.add", states.SUCCESS, done=timezone.now() - timedelta(minutes=2), wait=0.3, run=2)
        finished("testapp.add", states.FAILURE, done=timezone.now() - timedelta(minutes=2), wait=0.3, run=2)
        job_stats_count()

    def test_an_address_outside_the_allowed_networks_needs_the_token(self):
        self.assertEqual(self.client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code, 403)
        with override_settings(METRICS_TOKEN="s3cret"):
            self.assertEqual(self.client.get("/metrics", REMOTE_ADDR="10.1.2.3",
                                             HTTP_AUTHORIZATION="Bearer wrong").status_code, 403)
            self.assertEqual(self.client.get("/metrics", REMOTE_ADDR="10.1.2.3",
                                             HTTP_AUTHORIZATION="Bearer s3cret").status_code, 200)
        with override_settings(METRICS_ALLOWED_NETWORKS=["10.1.0.0/16"]):
            self.assertEqual(self.client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code, 200)

    @override_settings(NINJA_NUM_PROXIES=1)
    def test_behind_a_proxy_the_clients_address_decides_not_the_proxys(self):
        """A proxy on the same host connects from loopback: the address it forwards is judged."""
        self.assertEqual(self.client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code, 403)
        # An entry the client wrote itself, before the proxy's, is not believed.
        self.assertEqual(self.client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.7").status_code, 403)
        self.assertEqual(self.client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code, 200)
        self.assertEqual(self.client.get("/metrics").status_code, 200)  # scraped past the proxy

    def test_without_a_proxy_a_forwarded_header_is_ignored(self):
        self.assertEqual(self.client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1")
                         .status_code, 403)

    def test_queues_jobs_histograms_and_workers_are_exported(self):
        dead_letter_queue_declare()  # as each worker does when it starts
        response = self.client.get("/metrics")  # the test client comes from 127.0.0.1
        self.assertEqual(response.status_code, 200)
        text = response.content.decode()
        for line in ('jobs_finished_total{queue="default",state="SUCCESS",task="testapp.add"} 1.0',
                     'jobs_finished_total{queue="default",state="FAILURE",task="testapp.add"} 1.0',
                     'jobs_run_seconds_bucket{le="1.0",queue="default",task="testapp.add"} 0.0',
                     'jobs_run_seconds_bucket{le="2.5",queue="default",task="testapp.add"} 2.0',
                     'jobs_wait_seconds_count{queue="default",task="testapp.add"} 2.0',
                     'jobs_unfinished{state="PENDING"} 0.0', 'jobs_workers{state="lost"} 0.0',
                     'jobs_queue_paused{queue="default"} 0.0', "jobs_broker_up 1.0",
                     'jobs_queue_consumers{queue="dead-letter"}'):
            with self.subTest(line=line):
                self.assertIn(line, text)

    def test_the_management_api_down_is_named_and_the_broker_still_counts_the_queues(self):
        from jobs.testing.processes import free_port

        job_queues_declare()  # as each worker does when it starts
        with override_settings(RABBITMQ_MANAGEMENT_URL=f"http://127.0.0.1:{free_port()}"):
            text = self.client.get("/metrics").content.decode()
        self.assertIn("jobs_broker_management_up 0.0", text)
        self.assertIn("jobs_broker_up 1.0", text)  # RabbitMQ itself answers
        self.assertIn('jobs_queue_messages_ready{queue="default"}', text)
        self.assertNotIn("jobs_queue_messages_unacked{", text)
        self.assertIn("jobs_finished_total", text)

    def test_a_broker_outage_degrades_to_broker_down(self):
        from jobs.testing.processes import free_port

        # The site's broker connections (connection_for_write) go where nothing listens.
        self.addCleanup(setattr, celery_app.conf, "broker_write_url", celery_app.conf.get("broker_write_url"))
        celery_app.conf.broker_write_url = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
        with override_settings(RABBITMQ_MANAGEMENT_URL=f"http://127.0.0.1:{free_port()}"):
            text = self.client.get("/metrics").content.decode()
        self.assertIn("jobs_broker_up 0.0", text)
        self.assertIn("jobs_broker_management_up 0.0", text)
        self.assertNotIn("jobs_queue_messages_ready{", text)
        self.assertIn("jobs_finished_total", text)

    def test_no_label_is_one_prometheus_sets_on_every_scraped_series(self):
        """Prometheus adds `job` and `instance` to every series it scrapes and renames a series' own
        to `exported_job`: a rule written `by (job)` would then add every task together."""
        text = self.client.get("/metrics").content.decode()
        labels = set(re.findall(r"[{,](\w+)=", text))
        self.assertIn("task", labels)
        self.assertFalse(labels & {"job", "instance"}, labels)

    def test_every_catalog_job_is_exported_at_zero_before_its_first_run(self):
        """A counter series born at its accumulated value reads as no increase to rate(): each job of
        the catalog starts at 0 on its queue, in every final state and in the histograms."""
        text = self.client.get("/metrics").content.decode()
        for line in ('jobs_finished_total{queue="default",state="SUCCESS",task="testapp.say_hello"} 0.0',
                     'jobs_finished_total{queue="default",state="FAILURE",task="testapp.say_hello"} 0.0',
                     'jobs_finished_total{queue="default",state="REVOKED",task="testapp.add"} 0.0',
                     'jobs_wait_seconds_count{queue="default",task="testapp.say_hello"} 0.0',
                     'jobs_run_seconds_bucket{le="+Inf",queue="default",task="testapp.say_hello"} 0.0'):
            with self.subTest(line=line):
                self.assertIn(line, text)

    def test_names_outside_the_catalog_are_one_other_series(self):
        """Task names and queues the site does not declare (Celery's own tasks, a chord body stored
        without a name, another app's results) add up under "other", not a series each for good."""
        for name in ("celery.chord_unlock", "someone.elses_task", None):
            result = finished("placeholder", states.SUCCESS, done=timezone.now(), wait=0.1, run=0.1, queue="their-queue")
            TaskResult.objects.filter(pk=result.pk).update(task_name=name)
        job_stats_count(now=timezone.now() + timedelta(seconds=20))
        text = self.client.get("/metrics").content.decode()
        self.assertIn('jobs_finished_total{queue="other",state="SUCCESS",task="other"} 3.0', text)
        self.assertNotIn("someone.elses_task", text)
        self.assertNotIn("their-queue", text)

    def test_the_shipped_prometheus_rules_pass_their_unit_tests(self):
        """promtool (Debian's prometheus package) checks the rules and runs
        docker/prometheus-alerts.test.yml: each rule fires where it should and not where it should not."""
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool is not installed (apt-get install prometheus); .ci/run installs it")
        folder = Path(settings.BASE_DIR) / "docker"
        for command in (["check", "rules", "prometheus-alerts.yml"], ["test", "rules", "prometheus-alerts.test.yml"]):
            run = subprocess.run([promtool, *command], cwd=folder, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_shipped_prometheus_rules_use_only_exported_metrics(self):
        """docker/prometheus-alerts.yml parses, and every metric it names is one /metrics exports."""
        rules_file = Path(settings.BASE_DIR) / "docker" / "prometheus-alerts.yml"
        rules = yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]
        exported = set(re.findall(r"^# TYPE (\w+) (\w+)", self.client.get("/metrics").content.decode(), re.M))
        names = {name for name, kind in exported} | {f"{name}_total" for name, kind in exported if kind == "counter"} | {
            f"{name}_bucket" for name, kind in exported if kind == "histogram"}
        used = {name for rule in rules for name in re.findall(r"\bjobs_\w+", rule["expr"])}
        self.assertGreaterEqual(len(rules), 8)
        self.assertLessEqual(used, names, used - names)

    def test_beat_ticks_are_read_from_its_lock(self):
        lock = redis.Redis.from_url(settings.REDIS_URL)
        lock.set(lock_name(), "token", px=settings.BEAT_LOCK_TIMEOUT * 1000 - 1000)  # renewed a second ago
        self.addCleanup(lock.delete, lock_name())
        text = self.client.get("/metrics").content.decode()
        tick = float(re.search(r"^jobs_beat_last_tick_timestamp_seconds (\S+)$", text, re.M).group(1))
        self.assertAlmostEqual(tick, time.time() - 1, delta=2)
