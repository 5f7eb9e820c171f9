"""The live job page in a real browser (Debian's Chromium, driven by Playwright)."""
import os
import shutil

from celery import states
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import tag
from django_celery_results.models import TaskResult
from playwright.sync_api import expect, sync_playwright

from jobs.models import JobRecord

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@tag("integration", "browser")
class LiveJobPageTests(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        # Playwright's sync API runs an event loop in this thread; the test's own database calls
        # are still made one at a time, from this thread.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        super().setUpClass()
        executable = shutil.which("chromium")
        if executable is None:
            raise AssertionError("Browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it.")
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]

    def signed_in_page(self, user):
        self.client.force_login(user)
        context = self.browser.new_context()
        self.addCleanup(context.close)
        context.add_cookies([{"name": "sessionid", "value": self.client.cookies["sessionid"].value,
                              "url": self.live_server_url}])
        return context.new_page()

    def test_a_failed_poll_is_retried_and_the_page_says_it_is_reconnecting(self):
        alice = User.objects.create_user("alice")
        result = TaskResult.objects.create(task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f20", task_name="testapp.add",
                                           status=states.PENDING)
        JobRecord.objects.create(result=result, launched_by=alice, arguments={"args": [1, 2], "kwargs": {}})
        page = self.signed_in_page(alice)
        failures = []

        def flaky_gateway(route):
            if len(failures) < 2:  # the proxy in front answers 502 twice, as during a deploy
                failures.append(route.request.url)
                return route.fulfill(status=502, body="Bad Gateway")
            return route.continue_()

        page.route("**/api/jobs/*/", flaky_gateway)
        page.goto(f"{self.live_server_url}/jobs/{result.task_id}/")
        expect(page.locator("#connection")).to_contain_text("reconnecting", timeout=10_000)
        TaskResult.objects.filter(pk=result.pk).update(status=states.SUCCESS, result="3")
        expect(page.locator("#status")).to_have_text("SUCCESS", timeout=20_000)
        expect(page.locator("#result")).to_have_text("3")
        expect(page.locator("#connection")).to_have_text("")
        self.assertEqual(len(failures), 2)
