"""Unique jobs (job(unique=...)): a launch while an identical job holds the key answers with that job,
from the API, the pages, code and beat; concurrent launches make one job; a lost key is bounded."""
import threading
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

from celery import states
from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.catalog import Unique, find_job
from jobs.launching.services import job_launch, job_retry
from jobs.records.models import JobRecord, UniqueKey
from jobs.scheduling.beat import SingleBeatScheduler
from jobs.workflows import workflow
from jobs.workflows.models import Workflow
from jobs.workflows.services import workflow_launch_declared
from tests.testapp.tasks import daily_digest, refresh_account, sync_account


def launch(job_name, **kwargs):
    return job_launch(name=job_name, kwargs=kwargs)


def settle(result, status):
    TaskResult.objects.filter(task_id=result.task_id).update(status=status)


class DeclarationTests(TestCase):
    def test_the_key_is_the_named_arguments_or_all_of_them_or_a_function_s(self):
        self.assertEqual(Unique(on=("a",)).key("j", {"a": 1, "b": 2}), Unique(on=("a",)).key("j", {"a": 1, "b": 3}))
        self.assertNotEqual(Unique().key("j", {"a": 1, "b": 2}), Unique().key("j", {"a": 1, "b": 3}))
        self.assertNotEqual(Unique().key("j", {"a": 1}), Unique().key("k", {"a": 1}))  # per job
        self.assertEqual(Unique(on=lambda a, b: str(a % 2)).key("j", {"a": 1, "b": 0}),
                         Unique(on=lambda a, b: str(a % 2)).key("j", {"a": 3, "b": 9}))
        self.assertEqual(len(Unique().key("j", {"a": "x" * 100_000})), 64)

    def test_a_wrong_declaration_is_refused_with_what_to_write(self):
        with self.assertRaisesMessage(ValueError, "'started', 'finished' or a positive timedelta"):
            Unique(until="done")
        with self.assertRaisesMessage(ValueError, "positive timedelta"):
            Unique(until=timedelta(0))
        with self.assertRaisesMessage(TypeError, "a tuple of argument names: ('a',)"):
            Unique(on="a")
        with self.assertRaisesMessage(TypeError, "names ['nope'], which are not its arguments"):
            Unique(on=("nope",)).key("j", {"a": 1})


class LaunchTests(TestCase):
    def test_a_launch_while_the_key_is_held_answers_with_the_holder_and_records_nothing(self):
        first = launch("testapp.sync_account", account=7)
        again = launch("testapp.sync_account", account=7, full=True)  # the key is the account alone
        other = launch("testapp.sync_account", account=8)
        self.assertEqual((first.launched, again.launched, other.launched), (True, False, True))
        self.assertEqual(again.task_id, first.task_id)
        self.assertNotEqual(other.task_id, first.task_id)
        self.assertEqual(JobRecord.objects.filter(result__task_name="testapp.sync_account").count(), 2)

    def test_until_finished_holds_through_the_run_and_lets_go_at_the_outcome(self):
        for outcome in (states.SUCCESS, states.FAILURE, states.REVOKED):
            first = launch("testapp.sync_account", account=1)
            settle(first, states.STARTED)
            self.assertFalse(launch("testapp.sync_account", account=1).launched)
            settle(first, outcome)
            self.assertTrue(launch("testapp.sync_account", account=1).launched, outcome)
            UniqueKey.objects.all().delete()

    def test_until_started_lets_go_once_the_job_runs(self):
        first = launch("testapp.refresh", name="feed")
        settle(first, states.RETRY)  # queued again after a failed try
        self.assertFalse(launch("testapp.refresh", name="feed").launched)
        settle(first, states.STARTED)
        second = launch("testapp.refresh", name="feed")
        self.assertTrue(second.launched)
        self.assertFalse(launch("testapp.refresh", name="feed").launched)

    def test_a_period_holds_whatever_became_of_the_job_until_it_ends(self):
        first = launch("testapp.daily_digest", kind="sales")
        settle(first, states.SUCCESS)
        self.assertEqual(launch("testapp.daily_digest", kind="sales").task_id, first.task_id)
        UniqueKey.objects.update(held_until=timezone.now())
        self.assertTrue(launch("testapp.daily_digest", kind="sales").launched)

    def test_a_retry_of_the_job_holding_the_key_takes_it_over(self):
        failed = launch("testapp.daily_digest", kind="late")
        settle(failed, states.FAILURE)
        retried = job_retry(result=TaskResult.objects.get(task_id=failed.task_id),
                            user=User.objects.create_user("ops", is_staff=True))
        self.assertTrue(retried.launched)
        self.assertNotEqual(retried.task_id, failed.task_id)
        self.assertEqual(launch("testapp.daily_digest", kind="late").task_id, retried.task_id)

    def test_a_key_whose_job_never_reached_the_queue_is_held_no_longer_than_the_bound(self):
        with self.settings(JOBS_UNIQUE_MAX_HOLD=timedelta(hours=2)):
            lost = launch("testapp.sync_account", account=3)  # stays PENDING: its web process died
        key = UniqueKey.objects.get(task_id=lost.task_id)
        self.assertEqual(key.held_until - key.held_since, timedelta(hours=2))
        self.assertFalse(launch("testapp.sync_account", account=3).launched)
        UniqueKey.objects.update(held_until=timezone.now() - timedelta(seconds=1))
        self.assertTrue(launch("testapp.sync_account", account=3).launched)

    def test_delay_from_code_claims_the_key_and_returns_the_holder(self):
        task = find_job("testapp.sync_account")
        with mock.patch("celery.app.task.Task.apply_async") as publish, self.captureOnCommitCallbacks(execute=True):
            first = sync_account.delay(5)
            second = sync_account.apply_async(kwargs={"account": 5, "full": True})
        self.assertEqual(second.id, first.id)
        self.assertEqual(publish.call_count, 1)  # the first, once its record committed
        self.assertEqual(publish.call_args.args[2], first.id)  # (args, kwargs, task_id): Celery's own send
        self.assertEqual(TaskResult.objects.get(task_id=first.id).status, states.PENDING)
        self.assertEqual(JobRecord.objects.get(result__task_id=first.id).arguments,
                         {"args": [], "kwargs": {"account": 5, "full": False}})
        self.assertIsNone(find_job("testapp.add").unique)
        self.assertEqual(task.unique, Unique(on=("account",)))

    def test_a_retry_of_the_holder_is_sent_as_it_is(self):
        first = launch("testapp.sync_account", account=6)
        with mock.patch("celery.app.task.Task.apply_async") as publish:
            sync_account.apply_async(kwargs={"account": 6}, task_id=first.task_id, retries=1)
        publish.assert_called_once()

    def test_beat_does_not_send_a_run_whose_key_is_held(self):
        held = launch("testapp.daily_digest", kind="ops")
        entry = SimpleNamespace(name="digest", task="testapp.daily_digest", args=[], kwargs={"kind": "ops"})
        self.assertTrue(SingleBeatScheduler._held(daily_digest, entry, "beat-run-1"))
        entry.kwargs = {"kind": "new"}
        self.assertFalse(SingleBeatScheduler._held(daily_digest, entry, "beat-run-2"))
        self.assertEqual(UniqueKey.objects.get(task_id="beat-run-2").job_name, "testapp.daily_digest")
        self.assertTrue(UniqueKey.objects.filter(task_id=held.task_id).exists())


class ApiAndPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("alice", password="a-long-password")

    def setUp(self):
        self.client.force_login(self.user)

    def test_the_api_answers_202_then_200_with_the_job_holding_the_key(self):
        body = {"task": "testapp.sync_account", "kwargs": {"account": 9}}
        first = self.client.post("/api/jobs/", body, content_type="application/json")
        second = self.client.post("/api/jobs/", body, content_type="application/json")
        self.assertEqual((first.status_code, second.status_code), (202, 200))
        self.assertEqual(second.json()["id"], first.json()["id"])
        self.assertEqual(second["Location"], first["Location"])
        schema = self.client.get("/api/openapi.json").json()
        self.assertEqual(sorted(schema["paths"]["/api/jobs/"]["post"]["responses"])[:2], ["200", "202"])

    def test_the_launch_page_says_so_and_shows_the_job_holding_the_key(self):
        form = {"job": "testapp.sync_account", "account": 4}
        first = self.client.post("/jobs/new/", form)
        second = self.client.post("/jobs/new/", form, follow=True)
        self.assertRedirects(second, first["Location"])
        self.assertContains(second, "testapp.sync_account is a unique job, and an identical one holds its key")

    def test_the_admin_lists_each_key_with_the_job_holding_it_and_its_state(self):
        held = launch("testapp.sync_account", account=11)
        launch("testapp.sync_account", account=12)
        self.client.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password"))
        with self.assertNumQueries(6):  # one for the rows and their holders' states, whatever their number
            page = self.client.get("/admin/jobs/uniquekey/")
        self.assertContains(page, f'href="/jobs/{held.task_id}/"')
        self.assertContains(page, "testapp.sync_account")
        self.assertContains(page, "<td class=\"field-holder_status\">PENDING</td>", html=True)


class ConcurrentLaunchTests(TransactionTestCase):
    def at_once(self, clients: int, launch_one) -> list:
        """What `launch_one()` answered in each of `clients` threads started together, each on its own connection
        (as web processes are), publishing nothing."""
        barrier, answers, errors = threading.Barrier(clients), [], []

        def one_client():
            try:
                barrier.wait()
                answers.append(launch_one())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=one_client) for _ in range(clients)]
        with mock.patch("celery.app.task.Task.apply_async"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(answers), clients)
        return answers

    def test_fifty_launches_at_once_from_fifty_connections_make_one_job(self):
        answers = self.at_once(50, lambda: launch("testapp.sync_account", account=42).task_id)
        self.assertEqual(len(set(answers)), 1)
        self.assertEqual(TaskResult.objects.filter(task_name="testapp.sync_account").count(), 1)

    def test_twenty_launches_of_a_unique_workflow_at_once_make_one_workflow(self):
        answers = self.at_once(20, lambda: workflow_launch_declared(
            name="testapp.rebuild_account", kwargs={"account": 3}, launched_by=None, origin=JobRecord.Origin.CODE).id)
        self.assertEqual(len(set(answers)), 1)
        self.assertEqual(Workflow.objects.count(), 1)


class WorkflowAndDjangoTaskTests(TestCase):
    def rebuild(self, account):
        return workflow_launch_declared(name="testapp.rebuild_account", kwargs={"account": account}, launched_by=None,
                                        origin=JobRecord.Origin.CODE)

    def test_a_unique_workflow_runs_once_per_key_however_it_is_launched(self):
        first, again, other = self.rebuild(1), self.rebuild(1), self.rebuild(2)
        self.assertEqual((first.launched, again.launched, other.launched), (True, False, True))
        self.assertEqual(again.id, first.id)
        self.assertNotEqual(other.id, first.id)
        self.assertEqual(Workflow.objects.count(), 2)
        # Run as a catalog job (a launch from the pages or the API, a schedule): it answers with the running one.
        self.assertEqual(find_job("testapp.rebuild_account").apply(kwargs={"account": 1}).get(), first.id)
        self.assertEqual(Workflow.objects.count(), 2)
        # Once it has ended, the key is free.
        Workflow.objects.filter(pk=first.pk).update(state=Workflow.State.SUCCESS)
        after = self.rebuild(1)
        self.assertTrue(after.launched)
        self.assertNotEqual(after.id, first.id)

    def test_the_api_answers_201_with_a_new_workflow_and_200_with_the_running_one(self):
        self.client.force_login(User.objects.create_user("wf"))
        answers = [self.client.post("/api/workflows/", {"workflow": "testapp.rebuild_account", "kwargs": {"account": 7}},
                                    content_type="application/json") for _ in range(2)]
        self.assertEqual([answer.status_code for answer in answers], [201, 200])
        self.assertEqual(answers[0].json()["id"], answers[1].json()["id"])

    def test_a_workflow_holds_its_key_while_it_runs_only(self):
        with self.assertRaisesMessage(ValueError, "while they run (until='finished'), not 'started'"):
            workflow("testapp.nowhere", unique=Unique(until="started"))

    def test_a_django_task_is_unique_with_flow_control(self):
        first, again, other = refresh_account.enqueue(5), refresh_account.enqueue(5), refresh_account.enqueue(6)
        self.assertEqual(again.id, first.id)
        self.assertNotEqual(other.id, first.id)
        self.assertEqual(TaskResult.objects.filter(task_name=refresh_account.module_path).count(), 2)
