"""Every page of the site and its admin, in a real browser with the site's Content-Security-Policy,
at a phone's width (390 px) and a laptop's (1280 px): no CSP violation in the console, nothing wider
than the screen, no table cut off at 1280 px."""
import json
import os

from celery import states
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import tag
from django.urls import NoReverseMatch, reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from jobs.launching.services import job_launch
from jobs.models import AlertRule, JobRecord, Worker
from jobs.queues.broker import job_queues_declare
from jobs.queues.services import queue_purge
from jobs.workflows import chain, step
from jobs.workflows.services import workflow_launch
from tests.jobs.test_browser import BrowserTestCase

WIDTHS = (390, 1280)
# With SCREENSHOTS_DIR set (`SCREENSHOTS_DIR=docs/screenshots python manage.py test tests.site.test_page_walk`),
# the walk saves the documentation's screenshots of these pages at 1280 px (.ci/run does, before building the docs).
SCREENSHOTS = {"operations-overview": "admin:jobs_queue_changelist", "queue": "admin:jobs_queue_detail",
               "workers": "admin:jobs_worker_changelist", "dead-letters": "admin:jobs_queue_dead_letters",
               "charts": "admin:jobs_queue_charts", "job": "jobs:detail", "workflow": "jobs:workflow",
               "waiting-on-limits": "admin:jobs_waitingjob_changelist", "limits": "admin:jobs_joblimit_changelist"}

# What the page shows wider than the screen: the document itself, or (at 1280 px, where there is
# room) a table cut off by its scrolling box.
OFF_SCREEN = """(wide) => {
  const found = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1) {
    const culprits = [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > width + 1
      && !e.closest(".scroll, .results, pre")).slice(0, 3).map(e => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className);
    found.push(`page ${document.documentElement.scrollWidth}px wide in ${width}px: ${culprits.join(", ")}`);
  }
  if (wide) for (const table of document.querySelectorAll("table")) {
    const box = table.parentElement.getBoundingClientRect();
    if (table.getBoundingClientRect().right > Math.min(box.right, width) + 1 && table.offsetParent)
      found.push(`table ${table.id || table.className} cut off at ${Math.round(box.right)}px: ` +
        [...table.querySelectorAll("thead th")]
          .map(th => `${th.textContent.trim()} ${Math.round(th.getBoundingClientRect().width)}`).join(", "));
  }
  return found;
}"""


@tag("integration", "browser")
class PageWalkTests(BrowserTestCase):
    def setUp(self):
        self.root = User.objects.create_superuser("root@example.com", "root@example.com", "a long password 1")
        done = TaskResult.objects.create(task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f31", task_name="testapp.add",
                                         status=states.SUCCESS, result=json.dumps("Zoë’s report"))
        JobRecord.objects.create(result=done, launched_by=self.root, arguments={"args": [], "kwargs": {"x": 1, "y": 2}},
                                 queue="default")
        queued = TaskResult.objects.create(task_id="6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f32", task_name="testapp.countdown",
                                           status=states.PENDING)
        JobRecord.objects.create(result=queued, launched_by=self.root, arguments={"args": [], "kwargs": {"n": 3}},
                                 queue="default")
        self.flow = workflow_launch(spec=chain(step("testapp.add", x=1, y=1), step("testapp.add", input="x", y=1)),
                                             name="a workflow with a long name to draw", launched_by=self.root)
        every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
        PeriodicTask.objects.create(name="every ten minutes", task="testapp.add", interval=every, kwargs='{"x": 1, "y": 1}')
        AlertRule.objects.create(name="failures", measure="failure_rate", threshold=0.5)
        Worker.objects.create(hostname="default@a-rather-long-host-name.example.com", queues=["default"],
                              consuming=["default"], concurrency=2, started_at=done.date_done, last_heartbeat=done.date_done)
        self.done, self.queued = done, queued
        # Imports of one owner, one at a time: the first sent (and taken off the queue after the test, before a
        # later test's worker could run it), the others waiting on the limit.
        for label in ("first", "second", "third"):
            job_launch(name="testapp.import_for", kwargs={"owner": 7, "label": label})
        self.addCleanup(queue_purge, name="default", user=None)
        job_queues_declare()  # as each worker does when it starts: the queues have figures

    def addresses(self) -> list[str]:
        """The site's pages, then each admin model's list, add form and first object's page."""
        pages = [reverse("jobs:list"), reverse("jobs:new"), reverse("jobs:new") + "?job=testapp.add",
                 reverse("jobs:detail", args=[self.done.task_id]), reverse("jobs:cancel", args=[self.queued.task_id]),
                 reverse("jobs:workflow", args=[self.flow.id]), reverse("jobs:workflow_cancel", args=[self.flow.id]),
                 reverse("accounts:tokens"), "/api/docs", reverse("admin:index"),
                 reverse("admin:jobs_queue_detail", args=["default"]), reverse("admin:jobs_queue_dead_letters"),
                 reverse("admin:jobs_queue_charts"), reverse("admin:jobs_queue_purge", args=["default"])]
        for optional in ("contacts:imports", "contacts:contacts"):
            try:
                pages.append(reverse(optional))
            except NoReverseMatch:  # the app is not installed (the engine's own settings)
                pass
        for model, model_admin in admin.site._registry.items():
            meta = model._meta
            pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
            if model_admin.has_add_permission(type("Request", (), {"user": self.root, "method": "GET"})()):
                pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
            first = model.objects.first() if meta.model_name != "queue" else None
            if first is not None:
                pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk]))
        return pages

    def test_every_page_keeps_to_the_csp_and_fits_a_phone_and_a_laptop(self):
        arguments = {"admin:jobs_queue_detail": ["default"], "jobs:detail": [self.done.task_id],
                     "jobs:workflow": [self.flow.id]}
        self.screenshot_names = {reverse(name, args=arguments.get(name, [])): shot for shot, name in SCREENSHOTS.items()}
        page = self.signed_in_page(self.root)
        violations, problems = [], []
        page.on("console", lambda message: violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text else None)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            for address in self.addresses():
                response = page.goto(self.live_server_url + address)
                self.assertLess(response.status, 400, f"{address} answered {response.status}")
                page.wait_for_load_state("networkidle")
                problems += [f"{address} at {width}px: {problem}" for problem in page.evaluate(OFF_SCREEN, width > 1000)]
                if width > 1000 and (name := self.screenshot_names.get(address)) and os.environ.get("SCREENSHOTS_DIR"):
                    page.screenshot(path=os.path.join(os.environ["SCREENSHOTS_DIR"], f"{name}.png"), full_page=True)
        self.assertEqual(violations, [])
        self.assertEqual(problems, [], "\n".join(problems))

    def test_the_signed_out_pages_too(self):
        context = self.browser.new_context(viewport={"width": 390, "height": 800})
        self.addCleanup(context.close)
        page = context.new_page()
        violations = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        for address in (reverse("login"), reverse("accounts:signup")):
            page.goto(self.live_server_url + address)
            self.assertEqual(page.evaluate(OFF_SCREEN, False), [], address)
        self.assertEqual(violations, [])
