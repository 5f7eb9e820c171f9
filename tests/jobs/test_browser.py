"""The live job page and the operations overview in a real browser (Debian's Chromium, driven by
Playwright)."""
import os
import shutil

from celery import states
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import tag
from django_celery_results.models import TaskResult
from playwright.sync_api import expect, sync_playwright

from jobs.models import JobRecord
from jobs.queues.services import queue_resume
from jobs.workflows.services import workflow_launch
from tests.users import grant

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserTestCase(StaticLiveServerTestCase):
    """A live server and a headless Chromium for the class; pages signed in as a given user."""

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


@tag("integration", "browser")
class LiveJobPageTests(BrowserTestCase):

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


@tag("integration", "browser")
class OperationsDashboardTests(BrowserTestCase):
    def test_an_operator_pauses_a_queue_and_sees_a_resume_by_someone_else_without_reloading(self):
        olga = grant(User.objects.create_user("olga", is_staff=True), "jobs.view_queue", "jobs.operate_queue")
        page = self.signed_in_page(olga)
        page.goto(f"{self.live_server_url}/admin/jobs/queue/")
        demo = page.locator("#queue-demo")
        expect(demo).to_be_visible()
        expect(demo.locator(".badge.paused")).to_have_count(0)

        demo.get_by_role("button", name="Pause").click()
        expect(page.locator(".messagelist")).to_contain_text("Queue demo is paused")
        expect(page.locator("#queue-demo .badge.paused")).to_have_text("paused")

        queue_resume(name="demo", user=olga)  # another operator, elsewhere
        expect(page.locator("#queue-demo .badge.paused")).to_have_count(0, timeout=15_000)
        expect(page.locator("#queue-demo").get_by_role("button", name="Pause")).to_be_visible()


@tag("integration", "browser")
class WorkflowGraphTests(BrowserTestCase):
    def test_the_graph_follows_the_steps_live(self):
        from jobs.testing.processes import Worker
        from jobs.workflows import chain, step

        worker = Worker(concurrency=2, queues="default").start()
        self.addCleanup(worker.stop)
        alice = User.objects.create_user("alice")
        flow = workflow_launch(spec=chain(step("testapp.sleep_then_add", seconds=3, x=1),
                                                   step("testapp.add", input="x", y=1)), launched_by=alice)
        page = self.signed_in_page(alice)
        page.goto(f"{self.live_server_url}/jobs/workflows/{flow.id}/")
        first, second = page.locator("g.step").nth(0), page.locator("g.step").nth(1)
        expect(first).to_have_attribute("data-status", "STARTED", timeout=15_000)
        expect(second).to_have_attribute("data-status", "PENDING")
        expect(second).to_have_attribute("data-status", "SUCCESS", timeout=20_000)  # no reload: the page refreshed
        expect(page.locator("#workflow-result")).to_have_text("2")
