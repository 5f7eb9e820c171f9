"""The seeds' small jobs, their queues, and the fetch job against a local stand-in third party."""
from unittest import mock

import httpx
from celery import current_app
from django.test import SimpleTestCase

from examples import fetch
from jobs.catalog import find_job
from tests.local_http import LocalServer


class RoutingTests(SimpleTestCase):
    def test_each_job_goes_to_its_queue(self):
        route = current_app.amqp.router.route
        for name, queue in (("jobs.send_activation_email", "email"), ("jobs.import_contacts", "long"),
                            ("jobs.build_report", "long"), ("jobs.countdown", "long"),
                            ("jobs.fetch_url", "default"), ("jobs.add", "default"), ("jobs.say_hello", "default")):
            with self.subTest(job=name):
                self.assertEqual(route({}, name)["queue"].name, queue)

    def test_every_queue_supports_priorities(self):
        self.assertEqual(current_app.conf.task_queue_max_priority, 9)


class FetchTests(SimpleTestCase):
    def test_summary_of_a_page(self):
        with LocalServer() as server:
            summary = fetch.url_summarize(url=server.url("/page"))
        self.assertEqual(summary["status"], 200)
        self.assertEqual(summary["title"], "Café prices")
        self.assertGreater(summary["bytes"], 1000)

    def test_client_errors_are_not_retried_server_errors_and_timeouts_are(self):
        with LocalServer() as server:
            with self.assertRaisesMessage(fetch.FetchRefused, "answered 404; not retrying a client error"):
                fetch.url_summarize(url=server.url("/missing"))
            with self.assertRaisesMessage(fetch.FetchTemporaryError, "answered 503"):
                fetch.url_summarize(url=server.url("/flaky-unit"))
            with mock.patch.object(fetch, "TIMEOUT", httpx.Timeout(0.5)), \
                    self.assertRaisesMessage(fetch.FetchTemporaryError, "ReadTimeout"):
                fetch.url_summarize(url=server.url("/slow"))
        task = find_job("jobs.fetch_url")
        self.assertIn(fetch.FetchTemporaryError, task.autoretry_for)
        self.assertFalse(any(issubclass(fetch.FetchRefused, kind) for kind in task.autoretry_for))

    def test_the_url_argument_must_be_a_web_address(self):
        with self.assertRaisesMessage(Exception, "url: Input should be a valid URL"):
            find_job("jobs.fetch_url").json_arguments(["not a url"])
