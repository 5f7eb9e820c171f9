"""Beat on the real broker, with a real worker: admin-made schedules run, and only once."""
import socket
import time
from datetime import timedelta
from itertools import pairwise

import redis
from celery import current_app
from celery.signals import after_task_publish
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import TransactionTestCase, tag
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from jobs.scheduling.beat import SingleBeatScheduler, lock_name
from jobs.testing.processes import Beat, Worker, wait_for


@tag("integration")
class BeatTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.worker = Worker(concurrency=2).start()
        cls.addClassCleanup(cls.worker.stop)

    def start_beat(self) -> Beat:
        beat = Beat().start()
        self.addCleanup(beat.stop)
        return beat

    def create_in_admin(self, name: str) -> PeriodicTask:
        """What a person does: pick the job, type its arguments, choose 'every 1 second'."""
        self.client.force_login(User.objects.create_superuser(f"admin-{time.monotonic_ns()}", password="pw"))
        every_second = IntervalSchedule.objects.get_or_create(every=1, period="seconds")[0]
        response = self.client.post("/admin/django_celery_beat/periodictask/add/", {
            "name": name, "regtask": "testapp.add", "enabled": "on", "interval": every_second.pk,
            "args": "[2, 3]", "kwargs": "{}",
        })
        self.assertEqual(response.status_code, 302)
        return PeriodicTask.objects.get(name=name)

    def runs(self, task: PeriodicTask):
        return TaskResult.objects.filter(periodic_task_name=task.name).order_by("date_created")

    def test_a_task_created_in_the_admin_runs_and_its_results_carry_its_name(self):
        self.start_beat()
        task = self.create_in_admin("add 2 + 3 every second")
        wait_for(lambda: self.runs(task).filter(status="SUCCESS").count() >= 2, timeout=30,
                 message=f"two runs of {task.name}; worker log:\n{self.worker.output()}")
        self.assertEqual({run.result for run in self.runs(task).filter(status="SUCCESS")}, {"5"})
        self.assertTrue(all(run.task_name == "testapp.add" for run in self.runs(task)))

    def test_two_beats_send_each_run_once_and_the_standby_takes_over(self):
        first, second = self.start_beat(), self.start_beat()
        active, standby = (first, second) if first.active else (second, first)
        self.assertFalse(standby.active)

        task = self.create_in_admin("two beats")
        wait_for(lambda: self.runs(task).exists(), timeout=30, message="the first run")
        started = time.monotonic()
        time.sleep(10)
        window = time.monotonic() - started
        times = [run.date_created for run in self.runs(task)]
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
        # One beat sends every second; a second one sending too would double the count and
        # leave runs a few milliseconds apart.
        self.assertLessEqual(len(times), window + 2, times)
        self.assertGreaterEqual(len(times), window / 2, times)
        self.assertGreater(min(gaps), 0.5, gaps)

        active.kill()  # a crash: the lock is not released, it expires
        before = self.runs(task).count()
        wait_for(lambda: standby.active, timeout=settings.BEAT_LOCK_TIMEOUT + 10, message="the standby to take over")
        wait_for(lambda: self.runs(task).count() >= before + 3, timeout=15, message="runs from the new beat")


class SchedulerLockTests(TransactionTestCase):
    """Two schedulers in this process, publishing to the test broker: what beat does around its lock."""

    def setUp(self):
        self.sent = []  # (when, periodic task's name) of each run published

        def published(headers, **kwargs):
            self.sent.append((time.monotonic(), headers.get("periodic_task_name")))
        after_task_publish.connect(published, weak=False)
        self.addCleanup(after_task_publish.disconnect, published)
        every_second = IntervalSchedule.objects.create(every=1, period="seconds")
        PeriodicTask.objects.create(name="every second", task="testapp.add", args="[1, 1]", interval=every_second)

    def scheduler(self) -> SingleBeatScheduler:
        scheduler = SingleBeatScheduler(app=current_app)
        self.addCleanup(scheduler.close)
        return scheduler

    def run_until(self, scheduler, sends: int, timeout: float = 5):
        deadline = time.monotonic() + timeout
        while len(self.runs()) < sends and time.monotonic() < deadline:
            scheduler.tick()
            time.sleep(0.02)

    def runs(self):
        return [moment for moment, name in self.sent if name == "every second"]

    def test_a_beat_that_regains_its_lock_does_not_resend_what_the_other_one_sent(self):
        first, second = self.scheduler(), self.scheduler()
        self.run_until(first, 1)
        # The lock is gone (it expired while `first` was stalled, or Redis failed over): `second`
        # takes over and sends a run; then `first` takes the lock back.
        first.lock.local.token, stalled_token = None, first.lock.local.token
        redis.Redis.from_url(settings.REDIS_URL).delete(lock_name())
        self.run_until(second, 2)
        second.lock.release()
        second.holds_lock = False
        first.lock.local.token = stalled_token
        self.run_until(first, 3)
        runs = self.runs()
        self.assertEqual(len(runs), 3, self.sent)
        self.assertGreater(min(later - earlier for earlier, later in pairwise(runs)), 0.5, self.sent)


    def test_beat_goes_on_sending_after_its_connection_to_the_broker_breaks(self):
        scheduler = self.scheduler()
        self.run_until(scheduler, 1)
        scheduler.producer.channel.connection.sock.shutdown(socket.SHUT_RDWR)  # the network fails
        self.run_until(scheduler, 4, timeout=10)
        self.assertGreaterEqual(len(self.runs()), 4, self.sent)
        runs = TaskResult.objects.filter(periodic_task_name="every second").order_by("date_created")
        # A run published as the connection broke is not known to have reached the queue: it is
        # settled as not sent (a worker would skip it), and the ones after it were confirmed.
        self.assertLessEqual(runs.filter(status="REVOKED").count(), 1)
        self.assertEqual(runs.last().status, "PENDING")


class BadRowTests(TransactionTestCase):
    """A periodic task that no longer passes the checks is disabled by beat, never stops it."""

    def test_a_row_written_around_the_checks_is_disabled_and_the_others_still_run(self):
        every_second = IntervalSchedule.objects.create(every=1, period="seconds")
        good = PeriodicTask.objects.create(name="good", task="testapp.add", args="[1, 1]", interval=every_second)
        bad = PeriodicTask.objects.create(name="bad", task="testapp.add", args="[1, 1]", interval=every_second)
        PeriodicTask.objects.filter(pk=bad.pk).update(args='["not json')  # raw SQL, a migration...
        with self.assertLogs("jobs.scheduling.beat", "ERROR") as logs:
            scheduler = SingleBeatScheduler(app=current_app)
            self.addCleanup(scheduler.close)
            schedule = scheduler.schedule
        self.assertIn("good", schedule)
        self.assertNotIn("bad", schedule)
        self.assertFalse(PeriodicTask.objects.get(pk=bad.pk).enabled)
        self.assertIn("args: Not valid JSON", logs.output[0])
        self.assertTrue(PeriodicTask.objects.get(pk=good.pk).enabled)

    def test_a_one_off_that_no_longer_validates_can_still_be_disabled(self):
        every_second = IntervalSchedule.objects.create(every=1, period="seconds")
        task = PeriodicTask.objects.create(name="once", task="testapp.add", args="[1, 1]", interval=every_second,
                                           one_off=True)
        PeriodicTask.objects.filter(pk=task.pk).update(args='["one", 1]')  # the job's signature changed
        task.refresh_from_db()
        task.enabled = False
        task.save()  # what beat does after a one-off ran
        self.assertFalse(PeriodicTask.objects.get(pk=task.pk).enabled)


@tag("integration")
class BeatLockProcessTests(TransactionTestCase):
    """Real beat processes: one frozen past its lock's life, the other frozen in turn, the first
    thawed. Runs are counted as beat records them when it sends (no worker needed)."""

    def tearDown(self):
        current_app.control.purge()  # the runs nobody ran

    def test_a_beat_that_loses_and_regains_its_lock_sends_nothing_twice(self):
        every_second = IntervalSchedule.objects.create(every=1, period="seconds")
        PeriodicTask.objects.create(name="frozen beats", task="testapp.add", args="[1, 1]", interval=every_second)
        runs = TaskResult.objects.filter(periodic_task_name="frozen beats")
        environment = {"BEAT_LOCK_TIMEOUT": "3"}
        first = Beat(environment).start()
        self.addCleanup(first.stop)
        self.addCleanup(first.resume)
        wait_for(lambda: runs.count() >= 2, timeout=30, message=f"the first beat's runs:\n{first.output()}")
        first.freeze()
        second = Beat(environment).start()
        self.addCleanup(second.stop)
        self.addCleanup(second.resume)
        before = runs.count()
        wait_for(lambda: runs.count() >= before + 2, timeout=30, message=f"the second beat's runs:\n{second.output()}")
        second.freeze()
        first.resume()
        before = runs.count()
        wait_for(lambda: runs.count() >= before + 3, timeout=30, message=f"the first beat again:\n{first.output()}")
        moments = list(runs.order_by("date_created").values_list("date_created", flat=True))
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(moments)]
        self.assertGreater(min(gaps), 0.5, f"{gaps}\nfirst:\n{first.output()}\nsecond:\n{second.output()}")
        self.assertIn("took the scheduling lock", first.output().rsplit("standing by", 1)[-1])


class StockSchedulerParityTests(TransactionTestCase):
    """What django-celery-beat's own scheduler tests expect of a DatabaseScheduler, which a user
    swapping this one in expects too: reserve() and sync() write runs back, pending runs are written
    before edits are read, and an edit says the schedule changed."""

    def setUp(self):
        every_minute = IntervalSchedule.objects.create(every=60, period="seconds")
        self.task = PeriodicTask.objects.create(name="minutely", task="testapp.add", args="[1, 1]",
                                                interval=every_minute)
        self.scheduler = SingleBeatScheduler(app=current_app)
        self.addCleanup(self.scheduler.close)

    def test_sync_writes_reserved_runs_back(self):
        entry = self.scheduler.schedule["minutely"]
        reserved = self.scheduler.schedule["minutely"] = self.scheduler.reserve(entry)
        self.scheduler.sync()
        self.task.refresh_from_db()
        self.assertEqual((self.task.last_run_at, self.task.total_run_count),
                         (reserved.last_run_at, reserved.total_run_count))
        self.assertEqual(self.task.total_run_count, 1)
        self.assertFalse(self.scheduler._dirty)

    def test_reserved_runs_are_written_before_an_edit_is_read_and_the_schedule_says_it_changed(self):
        entry = self.scheduler.schedule["minutely"]
        self.assertTrue(self.scheduler.schedules_equal(self.scheduler.schedule, self.scheduler.schedule))
        reserved = self.scheduler.schedule["minutely"] = self.scheduler.reserve(entry)
        edited = PeriodicTask.objects.get(pk=self.task.pk)
        edited.args = "[16, 16]"
        edited.save()
        now = self.scheduler.schedule
        self.task.refresh_from_db()
        self.assertEqual((self.task.last_run_at, self.task.total_run_count, self.task.args),
                         (reserved.last_run_at, 1, "[16, 16]"))
        self.assertEqual(now["minutely"].args, [16, 16])
        self.assertFalse(self.scheduler.schedules_equal(now, now))  # once, as the stock scheduler
        self.assertTrue(self.scheduler.schedules_equal(now, now))


class ThousandsOfTasksTests(TransactionTestCase):
    """What keeps beat on time with thousands of periodic tasks (see bench_beat): runs due together
    go in one batch, and an edit re-reads only the rows it changed."""

    def setUp(self):
        self.every_minute = IntervalSchedule.objects.create(every=60, period="seconds")
        an_hour_ago = timezone.now() - timedelta(hours=1)
        PeriodicTask.objects.bulk_create(
            PeriodicTask(name=f"task {n}", task="testapp.add", args=f"[{n}, 1]", interval=self.every_minute,
                         last_run_at=an_hour_ago)
            for n in range(50)
        )
        self.scheduler = SingleBeatScheduler(app=current_app)
        self.addCleanup(self.scheduler.close)
        self.addCleanup(current_app.control.purge)  # the runs nobody ran

    def test_runs_due_together_are_claimed_and_recorded_in_a_constant_number_of_statements(self):
        self.scheduler.tick()  # reads the table and builds the heap
        PeriodicTask.objects.filter(name__startswith="task ").update(last_run_at=timezone.now() - timedelta(hours=1))
        self.scheduler._initial_read, self.scheduler._next_check = True, 0.0  # as after a takeover
        with CaptureQueriesContext(connection) as queries:
            self.scheduler.tick()
        runs = TaskResult.objects.filter(periodic_task_name__startswith="task ")
        self.assertEqual(runs.filter(status="PENDING").count(), 100, "each task's run, twice: before and now")
        self.assertEqual(sorted(runs.values_list("record__arguments__args", flat=True))[-2:], [[49, 1], [49, 1]])
        writes = [query["sql"] for query in queries.captured_queries if not query["sql"].startswith("SELECT")]
        self.assertEqual(len(writes), 2, writes)  # the claim, and the records

    def test_an_edit_rebuilds_only_the_entries_it_changed(self):
        schedule = dict(self.scheduler.schedule)
        edited = PeriodicTask.objects.get(name="task 1")
        edited.args = "[100, 1]"
        edited.save()  # as the admin does: django-celery-beat signals the change
        PeriodicTask.objects.get(name="task 2").delete()
        renamed = PeriodicTask.objects.get(name="task 3")
        renamed.name = "task three"
        renamed.save()
        with self.assertLogs("jobs.scheduling.beat", "INFO") as logs:
            now = self.scheduler.schedule
        self.assertIn("read 2 new or changed periodic tasks", logs.output[0])
        self.assertEqual(now["task 1"].args, [100, 1])
        self.assertNotIn("task 2", now)
        self.assertNotIn("task 3", now)
        self.assertIn("task three", now)
        self.assertIs(now["task 4"], schedule["task 4"])  # untouched: the same entry, its state kept
        self.assertEqual(len(now), len(schedule) - 1)

    def test_an_edit_of_a_schedule_row_rebuilds_the_tasks_on_it(self):
        """An interval edited in the admin changes every task on it, though it saves none of them."""
        self.assertEqual(self.scheduler.schedule["task 7"].schedule.run_every, timedelta(seconds=60))
        self.every_minute.every = 30
        self.every_minute.save()
        with self.assertLogs("jobs.scheduling.beat", "INFO") as logs:
            now = self.scheduler.schedule
        self.assertIn("read 50 new or changed periodic tasks", logs.output[0])
        self.assertEqual(now["task 7"].schedule.run_every, timedelta(seconds=30))

    def test_an_edit_reads_the_rows_saved_since_and_the_full_read_the_rest(self):
        """After the change signal only the rows saved since are compared (a hundred thousand cost
        0.6 s); a row written without a save (update(), raw SQL) waits for the full read."""
        PeriodicTask.objects.update(date_changed=timezone.now() - timedelta(hours=1))  # saved long ago
        self.scheduler._last_read -= 5 * 60
        schedule = dict(self.scheduler.schedule)
        PeriodicTask.objects.filter(name="task 5").update(args="[500, 1]")  # no save, no signal
        edited = PeriodicTask.objects.get(name="task 6")
        edited.args = "[600, 1]"
        edited.save()
        now = dict(self.scheduler.schedule)
        self.assertEqual(now["task 6"].args, [600, 1])
        self.assertIs(now["task 5"], schedule["task 5"])
        self.scheduler._last_read -= 5 * 60  # five minutes on: every row is compared
        self.assertEqual(self.scheduler.schedule["task 5"].args, [500, 1])
