"""The seeds' small jobs, their queues, and the fetch job against a local stand-in third party."""
from unittest import mock

import httpx
from celery import current_app
from django.test import SimpleTestCase, override_settings

from examples import fetch
from jobs.catalog import find_job
from tests.local_http import LocalServer


class RoutingTests(SimpleTestCase):
    def test_each_job_goes_to_its_queue(self):
        route = current_app.amqp.router.route
        for name, queue in (("jobs.send_activation_email", "email"), ("jobs.import_contacts", "long"),
                            ("jobs.build_report", "long"), ("jobs.countdown", "demo"),
                            ("jobs.fetch_url", "default"), ("jobs.add", "default"), ("jobs.say_hello", "default")):
            with self.subTest(job=name):
                self.assertEqual(route({}, name)["queue"].name, queue)

    def test_every_queue_supports_priorities(self):
        self.assertEqual(current_app.conf.task_queue_max_priority, 9)


@override_settings(FETCH_ALLOWED_NETWORKS=["127.0.0.1/32"])  # the local stand-in third party
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
                    self.assertRaisesMessage(fetch.FetchTemporaryError, "failed: no answer in time"):
                fetch.url_summarize(url=server.url("/slow"))
        task = find_job("jobs.fetch_url")
        self.assertIn(fetch.FetchTemporaryError, task.autoretry_for)
        self.assertFalse(any(issubclass(fetch.FetchRefused, kind) for kind in task.autoretry_for))

    def test_the_url_argument_must_be_a_web_address(self):
        with self.assertRaisesMessage(Exception, "url: Input should be a valid URL"):
            find_job("jobs.fetch_url").json_arguments(["not a url"])


class FetchAddressTests(SimpleTestCase):
    """fetch_url reaches public addresses only, at the start and at every redirect."""

    def test_internal_addresses_are_refused_without_connecting(self):
        with LocalServer() as server:
            for url in (server.url("/page"), "http://localhost:1/", "http://10.0.0.1/", "http://169.254.169.254/latest/",
                        "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "ftp://example.com/"):
                with self.subTest(url=url), self.assertRaises(fetch.FetchRefused):
                    fetch.url_summarize(url=url)
            self.assertEqual(server.requests, [])

    def test_a_redirect_into_the_network_is_refused(self):
        with LocalServer() as server, override_settings(FETCH_ALLOWED_NETWORKS=["127.0.0.1/32"]):
            with self.assertRaisesMessage(fetch.FetchRefused, "http://169.254.169.254/latest/ was refused"):
                fetch.url_summarize(url=server.url("/redirect?to=http://169.254.169.254/latest/"))
            summary = fetch.url_summarize(url=server.url(f"/redirect?to={server.url('/page')}"))
        self.assertEqual((summary["status"], summary["title"]), (200, "Café prices"))

    def test_errors_do_not_tell_open_ports_from_closed_ones(self):
        with override_settings(FETCH_ALLOWED_NETWORKS=["127.0.0.1/32"]), \
                self.assertRaises(fetch.FetchTemporaryError) as caught:
            fetch.url_summarize(url="http://127.0.0.1:1/")
        self.assertEqual(str(caught.exception), "The fetch of http://127.0.0.1:1/ failed: it could not be reached.")
