"""Global rate and concurrency limits (job(limit=Limit(...))): a limited job waits in the database and is
published when its limit lets it, in order within its key; the limit holds however many processes send."""
import threading
from datetime import timedelta

from celery import current_app as celery_app
from celery import states
from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.catalog import Limit, find_job, job
from jobs.launching.selectors import job_details
from jobs.launching.services import job_cancel, job_launch
from jobs.limits import services
from jobs.limits.models import JobLimit, LimitKey, WaitingJob
from jobs.limits.services import key_dispatch, limits_dispatch
from jobs.queues.broker import job_queues_declare
from jobs.records.selectors import jobs_with_details


def queued(queue: str = "default") -> int:
    """How many messages wait in `queue` on the broker."""
    with celery_app.connection_for_write() as connection_:
        return connection_.default_channel.queue_declare(queue=queue, passive=True).message_count


def purge(queue: str = "default") -> None:
    job_queues_declare()
    with celery_app.connection_for_write() as connection_:
        connection_.default_channel.queue_purge(queue)


class DeclarationTests(TestCase):
    def test_a_wrong_limit_is_refused_with_what_to_write(self):
        with self.assertRaisesMessage(ValueError, "needs a rate ('10/s') or a concurrency (4)"):
            Limit()
        with self.assertRaisesMessage(ValueError, "such as '10/s', '100/m' or '1000/h'; not '10 per second'"):
            Limit(rate="10 per second")
        with self.assertRaisesMessage(ValueError, "at least 1; not 0"):
            Limit(concurrency=0)
        with self.assertRaisesMessage(TypeError, "a tuple of argument names: ('url',)"):
            Limit(rate="1/s", on="url")
        with self.assertRaisesMessage(ValueError, "ignore_result=True does not keep"):
            job("testapp.nowhere", limit=Limit(concurrency=2), ignore_result=True)

    def test_the_key_is_readable_text_and_bounded(self):
        self.assertEqual(Limit(rate="1/s").key("j", {"a": 1}), "")
        self.assertEqual(Limit(rate="1/s", on=("a",)).key("j", {"a": 1, "b": 2}), "a=1")
        self.assertEqual(find_job("testapp.fetch_politely").limit.key("j", {"url": "https://a.example/x?y"}),
                         "a.example")
        self.assertEqual(len(Limit(rate="1/s", on=("a",)).key("j", {"a": "x" * 1000})), 64)


class WaitingTests(TransactionTestCase):
    def setUp(self):
        purge()
        self.addCleanup(purge)

    def fetch(self, url):
        return job_launch(name="testapp.fetch_politely", kwargs={"url": url})

    def test_jobs_over_their_rate_wait_in_order_and_other_keys_go_on(self):
        began = timezone.now()
        launched = [self.fetch(f"https://a.example/{n}") for n in range(6)]
        launching = timezone.now() - began
        other = self.fetch("https://b.example/")
        # 10/s lets 2 go at once (the burst of 200 ms), per host, and one more for each 100 ms the
        # launches took (about 200 ms on a 2-core machine, its first launch's setup included); the
        # rest wait, in the database.
        waiting_ids = set(WaitingJob.objects.values_list("task_id", flat=True))
        went = [result.task_id for result in launched if result.task_id not in waiting_ids]
        self.assertEqual(went, [result.task_id for result in launched[:len(went)]])  # the oldest
        self.assertGreaterEqual(len(went), 2)
        self.assertLessEqual(len(went), 2 + launching // timedelta(milliseconds=100))
        self.assertLess(len(went), 5, "the launches took too long for any to wait")
        self.assertNotIn(other.task_id, waiting_ids)
        self.assertEqual(queued(), len(went) + 1)
        self.assertEqual(TaskResult.objects.filter(status=states.PENDING).count(), 7)  # all recorded
        waiting = job_details(jobs_with_details().get(task_id=launched[len(went)].task_id))["waiting"]
        self.assertRegex(waiting, r"^Waiting on its limit, 10/s per host \(a.example\), for \d s\.$")

        # As time passes, they go, oldest first; never faster than the rate.
        task = find_job("testapp.fetch_politely")
        deadline = timezone.now() + timedelta(seconds=0.45)
        order = []
        while timezone.now() < deadline:
            before = set(WaitingJob.objects.values_list("task_id", flat=True))
            key_dispatch(task, "a.example")
            order += sorted(before - set(WaitingJob.objects.values_list("task_id", flat=True)))
        self.assertEqual(order, [result.task_id for result in launched[len(went):len(went) + len(order)]])
        # 10/s from a bucket the first ones emptied: one per 100 ms since then, never more.
        self.assertGreaterEqual(len(order), min(3, len(launched) - len(went)))
        self.assertLessEqual(len(went) + len(order), 2 + (timezone.now() - began) // timedelta(milliseconds=100))
        self.assertEqual(queued(), len(went) + 1 + len(order))

    def test_a_concurrency_limit_sends_the_next_when_one_ends(self):
        first, second, third = (job_launch(name="testapp.import_for", kwargs={"owner": 1, "label": str(n)})
                                for n in range(3))
        elsewhere = job_launch(name="testapp.import_for", kwargs={"owner": 2, "label": "x"})
        self.assertEqual(queued(), 2)
        self.assertEqual(set(WaitingJob.objects.filter(dispatched_at__isnull=False).values_list("task_id", flat=True)),
                         {first.task_id, elsewhere.task_id})  # each holding its owner's one slot
        task = find_job("testapp.import_for")
        self.assertEqual(key_dispatch(task, "owner=1"), 0)
        TaskResult.objects.filter(task_id=first.task_id).update(status=states.STARTED)
        self.assertEqual(key_dispatch(task, "owner=1"), 0)  # running holds it too
        TaskResult.objects.filter(task_id=first.task_id).update(status=states.SUCCESS)
        self.assertEqual(key_dispatch(task, "owner=1"), 1)
        self.assertFalse(WaitingJob.objects.filter(task_id=first.task_id).exists())
        self.assertTrue(WaitingJob.objects.get(task_id=second.task_id).dispatched_at)
        # A cancelled job never goes and holds nothing.
        job_cancel(result=third, user=User.objects.create_user("ops"))
        TaskResult.objects.filter(task_id=second.task_id).update(status=states.FAILURE)
        self.assertEqual(key_dispatch(task, "owner=1"), 0)
        self.assertFalse(WaitingJob.objects.filter(job_name="testapp.import_for", key="owner=1").exists())
        self.assertEqual(queued(), 3)

    def test_a_retry_waits_its_turn_again_after_its_countdown(self):
        first = job_launch(name="testapp.import_for", kwargs={"owner": 1, "label": "r"})
        after = job_launch(name="testapp.import_for", kwargs={"owner": 1, "label": "s"})
        TaskResult.objects.filter(task_id=first.task_id).update(status=states.RETRY)
        task = find_job("testapp.import_for")
        # What Task.retry sends: the job under its id, with its retry count and a countdown.
        task.apply_async(kwargs={"owner": 1, "label": "r"}, task_id=first.task_id, retries=1, countdown=60)
        retry = WaitingJob.objects.get(task_id=first.task_id)
        self.assertIsNone(retry.dispatched_at)  # waiting: it holds no slot, so the next one went
        self.assertGreater(retry.not_before, timezone.now() + timedelta(seconds=55))
        self.assertEqual(retry.options["retries"], 1)
        self.assertTrue(WaitingJob.objects.get(task_id=after.task_id).dispatched_at)
        self.assertEqual(queued(), 2)

    def test_a_job_sent_from_code_or_beat_waits_too(self):
        task = find_job("testapp.fetch_politely")
        results = [task.delay(f"https://c.example/{n}") for n in range(4)]
        self.assertEqual(queued(), 2)
        self.assertEqual(set(WaitingJob.objects.values_list("task_id", flat=True)), {r.id for r in results[2:]})
        self.assertEqual(TaskResult.objects.filter(task_id__in=[r.id for r in results]).count(), 4)

    def test_an_operator_s_change_holds_at_once_and_is_in_the_admin_s_history(self):
        admin = User.objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        changelist = self.client.get(reverse("admin:jobs_joblimit_changelist"))
        self.assertContains(changelist, "testapp.fetch_politely")
        self.assertContains(changelist, "10/s per host")
        response = self.client.post(reverse("admin:jobs_joblimit_change", args=["testapp.fetch_politely"]),
                                    {"rate": "1/m", "concurrency": ""})
        self.assertEqual(response.status_code, 302, response.content[:2000])
        history = self.client.get(reverse("admin:jobs_joblimit_history", args=["testapp.fetch_politely"]))
        self.assertContains(history, "rate 10/s (as declared) → 1/m")
        refused = self.client.post(reverse("admin:jobs_joblimit_change", args=["testapp.fetch_politely"]),
                                   {"rate": "fast", "concurrency": ""})
        self.assertContains(refused, "such as &#x27;10/s&#x27;")
        # This process reads the change at once, not within a second; and forgets it after this test.
        services._limits_read = (float("-inf"), {})
        self.addCleanup(setattr, services, "_limits_read", (float("-inf"), {}))
        [self.fetch(f"https://d.example/{n}") for n in range(3)]
        self.assertEqual(queued(), 1)  # 1/m: one now, the next in a minute
        # Raised again (blank: as declared, 10/s): they go at that rate from now, not a minute after the last,
        # as 1/m paced it: one at once, the next 100 ms later.
        JobLimit.objects.filter(job_name="testapp.fetch_politely").update(rate="")
        services._limits_read = (float("-inf"), {})
        task = find_job("testapp.fetch_politely")
        self.assertEqual(key_dispatch(task, "d.example"), 1)
        deadline = timezone.now() + timedelta(seconds=0.5)
        while WaitingJob.objects.exists() and timezone.now() < deadline:
            key_dispatch(task, "d.example")
        self.assertEqual(queued(), 3)

    def test_a_waiting_job_is_in_the_admin_with_its_limit_and_how_long_it_has_waited(self):
        [self.fetch(f"https://e.example/{n}") for n in range(4)]
        WaitingJob.objects.filter(dispatched_at=None).update(waiting_since=timezone.now() - timedelta(minutes=3))
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        page = self.client.get(reverse("admin:jobs_waitingjob_changelist"))
        self.assertContains(page, "testapp.fetch_politely")
        self.assertContains(page, "10/s per host")
        self.assertContains(page, "e.example")
        self.assertContains(page, "3\xa0minutes")


class ManyDispatchersTests(TransactionTestCase):
    """Dispatchers in several processes at once (threads, each with its connection) send each job once
    and keep the rate: the key's row lets one at a time send its jobs."""

    def setUp(self):
        purge()
        self.addCleanup(purge)

    def test_eight_dispatchers_send_each_job_once_within_the_rate(self):
        task = find_job("testapp.fetch_politely")
        LimitKey.objects.create(job_name=task.name, key="f.example", due=timezone.now())
        now = timezone.now()
        WaitingJob.objects.bulk_create([
            WaitingJob(task_id=f"job-{n:03}", job_name=task.name, key="f.example", kwargs={"url": f"https://f.example/{n}"},
                       waiting_since=now, not_before=now) for n in range(100)])
        sent, stop = [], threading.Event()

        def dispatch():
            try:
                while not stop.is_set():
                    sent.append(limits_dispatch({task.name: task})[0])
            finally:
                connection.close()

        threads = [threading.Thread(target=dispatch) for _ in range(8)]
        started = timezone.now()
        for thread in threads:
            thread.start()
        stop.wait(1.0)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = (timezone.now() - started).total_seconds()
        self.assertEqual(queued(), sum(sent))
        self.assertEqual(WaitingJob.objects.count(), 100 - sum(sent))
        # At most the rate over the time taken, plus the burst.
        self.assertLessEqual(sum(sent), 10 * elapsed + 2)
        self.assertGreaterEqual(sum(sent), 10 * 1.0 - 1)
        self.assertFalse(JobLimit.objects.exists())

    def test_with_more_keys_than_a_pass_takes_each_has_its_turn_however_many_are_held_back(self):
        """A pass looks at 100 keys: the 100 whose slots are taken must not keep the others waiting for ever."""
        task = find_job("testapp.import_for")
        now = timezone.now()
        held, free = [f"owner={n}" for n in range(1000, 1100)], [f"owner={n}" for n in range(2000, 2020)]
        TaskResult.objects.bulk_create([TaskResult(task_id=f"running-{key}", task_name=task.name, status=states.STARTED)
                                        for key in held])
        WaitingJob.objects.bulk_create(
            [WaitingJob(task_id=f"running-{key}", job_name=task.name, key=key, waiting_since=now, not_before=now,
                        dispatched_at=now) for key in held]
            + [WaitingJob(task_id=f"next-{key}", job_name=task.name, key=key, waiting_since=now, not_before=now,
                          kwargs={"owner": 1, "label": key}) for key in held + free])
        for _ in range(20):
            limits_dispatch({task.name: task})
        self.assertEqual(set(WaitingJob.objects.filter(dispatched_at=None).values_list("key", flat=True)), set(held))
        self.assertEqual(queued(), len(free))
