"""Beat on the real broker, with a real worker: admin-made schedules run, and only once."""
import time
from itertools import pairwise

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase, tag
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

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
