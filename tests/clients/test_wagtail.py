"""Wagtail, a third-party app that declares its background work with Django's tasks API, runs it on
this engine: saving a page enqueues Wagtail's search-index and reference-index tasks, which are
recorded, shown in the results admin by name, and run by a real worker through RabbitMQ.

Run by `make test-clients` (tests.settings_wagtail); skipped where Wagtail is not installed."""
import importlib.util
import unittest

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.tasks import TaskResultStatus
from django.test import TransactionTestCase, tag
from django_celery_results.models import TaskResult

from jobs.catalog import find_job
from jobs.testing.processes import Worker, wait_for

WAGTAIL = importlib.util.find_spec("wagtail") is not None and "wagtail" in settings.INSTALLED_APPS
TASKS = ["modelsearch.tasks.insert_or_update_object_task", "wagtail.tasks.update_reference_index_task"]


@tag("integration")
@unittest.skipUnless(WAGTAIL, "Wagtail is not installed here: make test-clients installs it and runs this")
class WagtailOnTheEngineTests(TransactionTestCase):
    def test_a_saved_page_is_indexed_by_wagtails_tasks_on_a_worker_and_they_show_in_the_admin(self):
        from wagtail.models import Page

        root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root"))
        with transaction.atomic():  # as Wagtail's editor saves a page
            page = root.add_child(instance=Page(title="Lighthouse keeping, a quarterly report", slug="lighthouse"))

        records = {row.task_name: row for row in TaskResult.objects.filter(task_name__in=TASKS)}
        self.assertEqual(sorted(records), TASKS)  # recorded when enqueued, before any worker runs them
        self.assertEqual({row.status for row in records.values()}, {"PENDING"})
        self.assertFalse(Page.objects.search("lighthouse").results())  # the index is the worker's to update

        for name in TASKS:  # in the catalog, like any job: launchable, schedulable, named in the pages
            self.assertEqual(find_job(name).name, name)

        worker = Worker(queues="default").start()
        try:
            wagtail_task = find_job(TASKS[0]).django_task
            finished = {name: wait_for(
                lambda row=row: (r := wagtail_task.get_backend().get_result(row.task_id)).is_finished and r,
                message=f"{name} to finish; worker log:\n{worker.output()}") for name, row in records.items()}
        finally:
            worker.stop()
        self.assertEqual({result.status for result in finished.values()}, {TaskResultStatus.SUCCESSFUL})
        self.assertEqual(finished[TASKS[0]].kwargs, {"app_label": "wagtailcore", "model_name": "page",
                                                     "pk": str(page.pk)})
        self.assertEqual([found.pk for found in Page.objects.search("lighthouse")], [page.pk])

        self.client.force_login(User.objects.create_superuser("editor", "editor@example.com", "x"))
        changelist = self.client.get("/admin/django_celery_results/taskresult/")
        for name in TASKS:
            self.assertContains(changelist, name)
        detail = self.client.get(f"/admin/django_celery_results/taskresult/{records[TASKS[1]].pk}/change/")
        self.assertContains(detail, "wagtail.tasks.update_reference_index_task")
        self.assertContains(detail, "wagtailcore")
