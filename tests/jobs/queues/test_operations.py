"""The operations pages: queues paused, resumed and purged on the real RabbitMQ with real workers,
workers seen alive and lost, dead letters listed and requeued, permissions and a broker outage."""
import os
import tempfile
import time
from unittest import mock

from celery import states
from django.conf import settings
from django.contrib.auth.models import User
from django.test import TestCase, TransactionTestCase, override_settings, tag
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.launching.services import job_launch
from jobs.models import JobAction, Queue
from jobs.models import Worker as WorkerRow
from jobs.queues.broker import broker_channel, dead_letter_queue_declare, job_queues_declare, queues_stats
from jobs.queues.selectors import consumers_by_worker, queue_waiting
from jobs.queues.services import consumers_tell, queue_pause, queue_resume
from jobs.testing.processes import Worker, dead_letter_count, free_port, wait_for
from jobs.workflows.services import workflow_launch
from tests.users import grant

OVERVIEW = reverse("admin:jobs_queue_changelist")
HEARTBEAT = {"WORKER_HEARTBEAT_SECONDS": "0.5"}


def staff(username: str, *permissions: str) -> User:
    return grant(User.objects.create_user(username, is_staff=True), *permissions)


def ready(queue: str) -> int:
    """Messages waiting in `queue`, as the management API reports them (it samples every few seconds)."""
    stats = queues_stats().get(queue)
    return stats.ready if stats else 0


def launch(n: int, queue: str = "default") -> list[str]:
    return [job_launch(name="testapp.add", args=[i, 1], options={"queue": queue}).task_id
            for i in range(n)]


def statuses(ids: list[str]) -> set[str]:
    return set(TaskResult.objects.filter(task_id__in=ids).values_list("status", flat=True))


@tag("integration")
@override_settings(WORKER_HEARTBEAT_SECONDS=0.5)
class QueueControlTests(TransactionTestCase):
    def setUp(self):
        self.operator = staff("olga", "jobs.view_queue", "jobs.operate_queue")
        self.client.force_login(self.operator)

    def start_worker(self, queues="default", heartbeat=HEARTBEAT):
        worker = Worker(concurrency=2, queues=queues, environment=heartbeat).start()
        self.addCleanup(worker.stop)
        wait_for(lambda: WorkerRow.objects.filter(hostname=worker.name).exists(), message="the first heartbeat")
        return worker

    def consuming(self, worker) -> list[str]:
        return WorkerRow.objects.get(hostname=worker.name).consuming

    def test_a_paused_queue_fills_while_jobs_are_launched_and_drains_when_resumed(self):
        worker = self.start_worker()
        response = self.client.post(reverse("admin:jobs_queue_pause", args=["default"]))
        self.assertRedirects(response, OVERVIEW)
        wait_for(lambda: self.consuming(worker) == [], message="the worker to stop consuming default")

        ids = launch(5)
        self.assertRegex(self.client.get(OVERVIEW).content.decode(),
                         r'(?s)<tr id="queue-default"[^>]*>.*?<td class="ready">5</td>')
        self.assertEqual(statuses(ids), {states.PENDING})
        page = self.client.get(OVERVIEW).content.decode()
        self.assertIn('<span class="badge paused"', page)
        self.assertIn("Resume", page)

        self.client.post(reverse("admin:jobs_queue_resume", args=["default"]))
        wait_for(lambda: statuses(ids) == {states.SUCCESS}, timeout=30, message=f"the queue to drain:\n{worker.output()}")
        wait_for(lambda: ready("default") == 0, timeout=30, message="default to be empty")
        self.assertEqual(list(JobAction.objects.filter(queue="default").values_list("kind", "actor__username")),
                         [("resume", "olga"), ("pause", "olga")])

    def test_a_worker_started_while_its_queue_is_paused_stays_off_it(self):
        queue_pause(name="default", user=self.operator)
        ids = launch(2)
        worker = self.start_worker("default,email")
        self.assertEqual(self.consuming(worker), ["email"])
        self.assertEqual(WorkerRow.objects.get(hostname=worker.name).queues, ["default", "email"])
        self.assertEqual(statuses(ids), {states.PENDING})

        queue_resume(name="default", user=self.operator)
        wait_for(lambda: statuses(ids) == {states.SUCCESS}, timeout=30, message=f"the jobs to run:\n{worker.output()}")

    def broker_consumers(self, queue: str) -> list[str]:
        """The hostnames of this test's workers the broker says consume `queue` (the truth). A worker
        of an earlier test, stopped, may stay listed a few seconds (the management API's statistics
        interval): it is no worker of this test's, and not counted."""
        by_worker, _ = consumers_by_worker()
        return sorted(hostname for hostname, found in by_worker.items() if any(c.queue == queue for c in found))

    def test_resume_gives_the_queue_back_to_the_workers_started_for_it_and_no_other(self):
        # The email worker's heartbeat, which would put it right, comes too late to hide a mistake.
        on_default, on_email = self.start_worker("default"), self.start_worker("email", {"WORKER_HEARTBEAT_SECONDS": "60"})
        wait_for(lambda: self.broker_consumers("default") == [on_default.name], timeout=20,
                 message="the broker to list the default worker")
        self.client.post(reverse("admin:jobs_queue_pause", args=["default"]))
        wait_for(lambda: self.broker_consumers("default") == [], timeout=20, message="default to have no consumer")

        self.client.post(reverse("admin:jobs_queue_resume", args=["default"]))
        wait_for(lambda: self.broker_consumers("default") == [on_default.name], timeout=20,
                 message="the default worker to consume default again")
        for _ in range(3):  # a few heartbeats later, still only the worker started for it
            time.sleep(0.5)
            self.assertEqual(self.broker_consumers("default"), [on_default.name])
        self.assertEqual(self.broker_consumers("email"), [on_email.name])
        grant(self.operator, "jobs.view_worker")
        page = self.client.get(reverse("admin:jobs_worker_changelist")).content.decode()
        self.assertIn("default (prefetch 2)", page)  # 2 processes × CELERY_WORKER_PREFETCH_MULTIPLIER 1
        self.assertNotIn("NOT started for it", page)

    def test_a_worker_told_to_consume_a_queue_it_was_not_started_for_drops_it(self):
        on_default, on_email = self.start_worker("default"), self.start_worker("email")
        consumers_tell("add_consumer", "default")  # a broadcast, as Resume used to send
        wait_for(lambda: "Started consuming from default" in on_email.output(), timeout=20,
                 message=f"the email worker to take the broadcast:\n{on_email.output()}")
        wait_for(lambda: "Canceling queue default" in on_email.output(), timeout=20,
                 message=f"the email worker's heartbeat to drop default:\n{on_email.output()}")
        # What the broker and the worker's next heartbeat say, each a moment later.
        wait_for(lambda: self.broker_consumers("default") == [on_default.name], timeout=20,
                 message="the broker to list only the default worker on default")
        wait_for(lambda: self.consuming(on_email) == ["email"], timeout=10, message="the heartbeat to record it")

    def test_the_queue_page_names_its_consumers_and_the_jobs_waiting(self):
        worker = self.start_worker("default")
        queue_pause(name="email", user=self.operator)
        ids = launch(3, queue="email")
        wait_for(lambda: self.broker_consumers("default") == [worker.name], timeout=20, message="the consumer")
        page = self.client.get(reverse("admin:jobs_queue_detail", args=["default"]))
        self.assertContains(page, f"<th>{worker.name}</th>", html=False)
        self.assertContains(page, "after the job (late)")
        page = self.client.get(reverse("admin:jobs_queue_detail", args=["email"]))
        self.assertContains(page, "No consumer: the queue is paused.")
        self.assertContains(page, "Waiting: 3 jobs")
        for task_id in ids:
            self.assertContains(page, task_id[:8])

    def test_a_worker_that_missed_the_pause_is_put_right_by_its_heartbeat(self):
        worker = self.start_worker()
        # Paused in the database only, as when the broadcast was lost.
        Queue.objects.create(name="default", paused_at="2026-01-01T00:00Z")
        wait_for(lambda: self.consuming(worker) == [], timeout=10, message="the heartbeat to stop default")

    def test_purge_removes_the_waiting_jobs_and_revokes_them(self):
        queue_pause(name="email", user=self.operator)
        ids = launch(3, queue="email")
        wait_for(lambda: ready("email") == 3, timeout=30, message="three jobs waiting in email")
        confirm = self.client.get(reverse("admin:jobs_queue_purge", args=["email"]))
        self.assertContains(confirm, "3 jobs waiting in email will be removed")

        response = self.client.post(reverse("admin:jobs_queue_purge", args=["email"]), follow=True)
        self.assertContains(response, "Queue email purged: 3 jobs removed")
        # The figures shown with it are the queue's now, not the management API's last sample.
        self.assertContains(response, '<tr id="queue-email" class="paused">', html=False)
        self.assertRegex(response.content.decode(), r'(?s)<tr id="queue-email"[^>]*>.*?<td class="ready">0</td>')
        self.assertEqual(statuses(ids), {states.REVOKED})
        self.assertIn("purged from queue email by olga", TaskResult.objects.get(task_id=ids[0]).result)
        self.assertEqual(JobAction.objects.get(kind="purge").detail, "3 messages")
        wait_for(lambda: ready("email") == 0, timeout=30, message="email to be empty")


@tag("integration")
@override_settings(WORKER_HEARTBEAT_SECONDS=0.5)
class WorkerPageTests(TransactionTestCase):
    def setUp(self):
        self.client.force_login(staff("vera", "jobs.view_worker"))

    def test_a_killed_worker_turns_lost_and_a_stopped_one_stopped(self):
        killed = Worker(concurrency=1, environment=HEARTBEAT).start()
        stopped = Worker(concurrency=1, queues="email", environment=HEARTBEAT).start()
        self.addCleanup(stopped.stop)
        row = wait_for(lambda: WorkerRow.objects.filter(hostname=killed.name).first(), message="a heartbeat")
        self.assertEqual((row.status, row.queues, row.concurrency), ("idle", ["default"], 1))

        killed.kill()
        stopped.stop()
        wait_for(lambda: WorkerRow.objects.get(hostname=killed.name).status == "lost", timeout=10,
                 message="the killed worker to be lost")
        self.assertEqual(WorkerRow.objects.get(hostname=stopped.name).status, "stopped")
        page = self.client.get(reverse("admin:jobs_worker_changelist")).content.decode()
        self.assertIn('<span class="worker-lost">lost</span>', page)
        self.assertIn('<span class="worker-stopped">stopped</span>', page)

    def test_an_operator_grows_and_shrinks_a_pool_audited(self):
        self.client.force_login(staff("pia", "jobs.view_worker", "jobs.operate_queue"))
        worker = Worker(concurrency=2, environment=HEARTBEAT).start()
        self.addCleanup(worker.stop)
        wait_for(lambda: WorkerRow.objects.filter(hostname=worker.name).exists(), message="the first heartbeat")
        pool = reverse("admin:jobs_worker_pool", args=[worker.name])
        response = self.client.post(pool, {"change": "1"}, follow=True)
        self.assertContains(response, "pool grown by one process")
        wait_for(lambda: WorkerRow.objects.get(hostname=worker.name).concurrency == 3, timeout=10, message="3 processes")
        self.client.post(pool, {"change": "-1"})
        wait_for(lambda: WorkerRow.objects.get(hostname=worker.name).concurrency == 2, timeout=10, message="2 processes")
        self.assertEqual(list(JobAction.objects.filter(kind="pool").values_list("worker", "detail", "actor__username")),
                         [(worker.name, "-1 process", "pia"), (worker.name, "+1 process", "pia")])

    def test_a_pool_is_not_resized_without_the_permission_or_to_nothing(self):
        self.client.force_login(staff("pia", "jobs.view_worker", "jobs.operate_queue"))
        WorkerRow.objects.create(hostname="w1@host", concurrency=1, started_at=timezone.now(),
                                 last_heartbeat=timezone.now())
        pool = reverse("admin:jobs_worker_pool", args=["w1@host"])
        response = self.client.post(pool, {"change": "-1"}, follow=True)
        self.assertContains(response, "a pool is not shrunk to none")
        self.client.force_login(staff("vic", "jobs.view_worker"))
        self.assertEqual(self.client.post(pool, {"change": "1"}).status_code, 403)
        self.assertFalse(JobAction.objects.exists())

    def test_a_busy_worker_shows_the_job_it_runs_linked(self):
        worker = Worker(concurrency=1, environment=HEARTBEAT).start()
        self.addCleanup(worker.stop)
        job = job_launch(name="testapp.countdown", args=[5], options={"queue": "default"})
        wait_for(lambda: WorkerRow.objects.get(hostname=worker.name).status == "busy", timeout=20, message="busy")
        page = self.client.get(reverse("admin:jobs_worker_changelist")).content.decode()
        link = reverse("admin:django_celery_results_taskresult_change", args=[TaskResult.objects.get(task_id=job.task_id).pk])
        self.assertIn(f'<a href="{link}">testapp.countdown {job.task_id[:8]}</a>', page)


@tag("integration")
class DeadLetterTests(TransactionTestCase):
    def test_a_rejected_job_is_listed_with_its_death_and_requeued_once_repaired(self):
        operator = staff("otto", "jobs.view_queue", "jobs.operate_queue")
        self.client.force_login(operator)
        worker = Worker(concurrency=1).start()
        self.addCleanup(worker.stop)
        path = os.path.join(tempfile.mkdtemp(), "needed.txt")
        before = dead_letter_count()
        job = job_launch(name="testapp.needs_file", kwargs={"path": path}, options={"queue": "default"})
        wait_for(lambda: dead_letter_count() == before + 1, timeout=30, message=f"the dead letter:\n{worker.output()}")

        page = self.client.get(reverse("admin:jobs_queue_dead_letters"), {"job": "testapp.needs_file"})
        result = TaskResult.objects.get(task_id=job.task_id)
        self.assertEqual(result.status, states.FAILURE)
        link = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        self.assertContains(page, f'<a href="{link}">{job.task_id}</a>')
        self.assertContains(page, "<td>default</td><td>rejected</td><td>1</td>", html=False)

        with open(path, "w") as repaired:
            repaired.write("found")
        response = self.client.post(reverse("admin:jobs_queue_dead_letters") + "?job=testapp.needs_file",
                                    {"action": "requeue"}, follow=True)
        self.assertContains(response, "1 dead letters requeued.")
        wait_for(lambda: TaskResult.objects.get(task_id=job.task_id).status == states.SUCCESS, timeout=30,
                 message=f"the requeued job to succeed:\n{worker.output()}")
        self.assertEqual(dead_letter_count(), before)
        action = JobAction.objects.get(kind="requeue")
        self.assertEqual((action.record_id, action.actor, action.detail), (result.pk, operator, "after 1 deaths (rejected)"))


    def test_discarding_with_nothing_ticked_asks_first_with_the_count_and_the_filter(self):
        self.client.force_login(staff("otto", "jobs.view_queue", "jobs.operate_queue"))
        worker = Worker(concurrency=1).start()
        self.addCleanup(worker.stop)
        before = dead_letter_count()
        job_launch(name="testapp.needs_file", kwargs={"path": "/nonexistent/needed.txt"},
                            options={"queue": "default"})
        wait_for(lambda: dead_letter_count() == before + 1, timeout=30, message=f"the dead letter:\n{worker.output()}")
        address = reverse("admin:jobs_queue_dead_letters") + "?job=testapp.needs_file"

        confirm = self.client.post(address, {"action": "discard"})
        self.assertContains(confirm, "Every dead letter with job “testapp.needs_file”")
        self.assertContains(confirm, "<strong>1</strong> of the", html=False)
        self.assertEqual(dead_letter_count(), before + 1)  # asking discards nothing

        response = self.client.post(address, {"action": "discard", "confirmed": "yes"}, follow=True)
        self.assertContains(response, "1 dead letters discarded.")
        self.assertEqual(dead_letter_count(), before)
        self.assertEqual(JobAction.objects.get(kind="discard").actor.username, "otto")


@tag("integration")
class FreshBrokerTests(TestCase):
    def test_the_dead_letters_page_of_a_broker_no_worker_has_declared_its_queue_on_says_none(self):
        with broker_channel() as channel:
            channel.queue_delete(settings.DEAD_LETTER_QUEUE)
        self.addCleanup(dead_letter_queue_declare)
        self.client.force_login(staff("otto", "jobs.view_queue", "jobs.operate_queue"))
        page = self.client.get(reverse("admin:jobs_queue_dead_letters"))
        self.assertContains(page, "0 messages in the dead-letter queue")


class QueueWaitingTests(TestCase):
    def test_the_jobs_waiting_in_a_queue_leave_out_workflow_steps_not_yet_sent(self):
        from jobs.workflows import chain, step

        with self.captureOnCommitCallbacks():  # nothing is sent: every step waits for its turn
            workflow_launch(spec=chain(step("testapp.add", x=1, y=1), step("testapp.add", input="x", y=1)))
            job = job_launch(name="testapp.add", args=[1, 2], options={"queue": "default"})
        waiting, count = queue_waiting("default")
        self.assertEqual(([result.task_id for result in waiting], count), ([job.task_id], 1))


class OperationsPermissionTests(TestCase):
    def test_the_view_permission_sees_the_overview_without_its_controls(self):
        self.client.force_login(staff("wim", "jobs.view_queue"))
        page = self.client.get(OVERVIEW)
        self.assertContains(page, "Queues")
        self.assertNotContains(page, "Pause</button>")
        self.assertEqual(self.client.post(reverse("admin:jobs_queue_pause", args=["default"])).status_code, 403)
        self.assertEqual(self.client.get(reverse("admin:jobs_queue_purge", args=["default"])).status_code, 403)
        self.assertFalse(Queue.objects.exists())

    def test_an_unknown_queue_is_a_404_that_names_the_queues(self):
        self.client.force_login(staff("zoe", "jobs.view_queue", "jobs.operate_queue"))
        response = self.client.post(reverse("admin:jobs_queue_pause", args=["defualt"]))
        self.assertContains(response, "No job queue named &#x27;defualt&#x27;: the queues are default, demo", status_code=404)
        self.assertFalse(Queue.objects.exists())

    def test_unfinished_jobs_are_counted_up_to_a_cap(self):
        self.client.force_login(staff("uma", "jobs.view_queue"))
        for index in range(4):
            TaskResult.objects.create(task_id=f"queued-{index}", task_name="testapp.add", status=states.PENDING)
        with mock.patch("jobs.records.selectors.COUNT_CAP", 3), mock.patch("jobs.queues.admin.COUNT_CAP", 3):
            page = self.client.get(OVERVIEW)
        self.assertContains(page, '<td class="PENDING">3+</td>', html=True)
        self.assertContains(self.client.get(OVERVIEW), '<td class="PENDING">4</td>', html=True)

    def test_a_paused_queue_is_marked_in_the_results_admin_filter_too(self):
        root = User.objects.create_superuser("root", password="pw")
        queue_pause(name="email", user=root)
        self.client.force_login(root)
        page = self.client.get(reverse("admin:django_celery_results_taskresult_changelist"))
        self.assertContains(page, "email (paused)</a>")
        self.assertNotContains(page, "default (paused)")

    def test_staff_without_the_view_permission_are_refused(self):
        self.client.force_login(staff("xena"))
        self.assertEqual(self.client.get(OVERVIEW).status_code, 403)

    def test_an_unreachable_management_api_is_said_plainly_and_the_page_still_renders(self):
        self.client.force_login(staff("yann", "jobs.view_queue", "jobs.operate_queue"))
        job_queues_declare()  # as each worker does when it starts
        with override_settings(RABBITMQ_MANAGEMENT_URL=f"http://127.0.0.1:{free_port()}"):
            page = self.client.get(OVERVIEW)
        self.assertContains(page, "Rates and unacknowledged counts are unavailable (ready and consumers come from RabbitMQ "
                                  "itself): RabbitMQ&#x27;s management API at http://127.0.0.1:")
        self.assertContains(page, 'id="queue-default"')
        self.assertContains(page, '<td class="ready">')
        self.assertContains(page, "Pause</button>")
