"""Job statistics: finished jobs counted incrementally by minute and hour, with wait and run
histograms; the charts and the overview read them."""
import math
from datetime import timedelta

from celery import states
from django.contrib.auth.models import User
from django.db.models import Sum
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import JobRecord, JobStats
from jobs.stats.histograms import BASE, histogram_add, percentile
from jobs.stats.selectors import job_stats
from jobs.stats.services import _unnamed_results_warn, job_stats_count
from tests.users import grant


def finished(task_name: str, status: str, *, done, wait: float, run: float, queue: str = "default") -> TaskResult:
    """A result that waited `wait` seconds in `queue` and ran `run` seconds, ending at `done`."""
    result = TaskResult.objects.create(task_id=f"{task_name}-{TaskResult.objects.count()}", task_name=task_name)
    started = done - timedelta(seconds=run)
    TaskResult.objects.filter(pk=result.pk).update(  # date_done is auto_now on save: set it after
        status=status, date_created=started - timedelta(seconds=wait), date_started=started, date_done=done)
    JobRecord.objects.create(result=result, queue=queue)
    return result


class HistogramTests(TestCase):
    def test_percentiles_fall_within_a_bucket_of_the_true_value(self):
        histogram = {}
        durations = [0.010 * n for n in range(1, 101)]  # 10 ms .. 1 s
        for seconds in durations:
            bucket = int(math.log(seconds * 1000) / math.log(BASE))
            histogram_add(histogram, {str(bucket): 1})
        for fraction, true in ((0.5, 0.5), (0.95, 0.95)):
            estimate = percentile(histogram, fraction)
            self.assertLess(abs(estimate - true) / true, BASE - 1, (fraction, estimate))
        self.assertIsNone(percentile({}, 0.5))


class JobStatsCountTests(TestCase):
    def setUp(self):
        # Half past an hour gone: the minutes counted and the later ones stay within one hour whenever this runs.
        self.now = timezone.now().replace(minute=30, second=30, microsecond=0) - timedelta(hours=1)
        self.minute = self.now.replace(second=0) - timedelta(minutes=5)

    def test_finished_jobs_are_counted_once_by_minute_hour_job_and_queue_with_each_state(self):
        for index in range(10):
            finished("testapp.add", states.SUCCESS, done=self.minute + timedelta(seconds=index), wait=0.1, run=2.0)
        finished("testapp.add", states.FAILURE, done=self.minute + timedelta(seconds=20), wait=0.1, run=2.0)
        finished("testapp.say_hello", states.SUCCESS, done=self.minute + timedelta(seconds=30), wait=5, run=0.01,
                 queue="email")
        TaskResult.objects.create(task_id="queued", task_name="testapp.add")  # PENDING: not finished

        self.assertEqual(job_stats_count(now=self.now), 12)
        minute = {(row.task_name, row.queue): row for row in JobStats.objects.filter(period="minute", start=self.minute)}
        self.assertEqual({key: row.counts for key, row in minute.items()}, {
            ("testapp.add", "default"): {"SUCCESS": 10, "FAILURE": 1, "REVOKED": 0},
            ("testapp.say_hello", "email"): {"SUCCESS": 1, "FAILURE": 0, "REVOKED": 0}})
        hour = JobStats.objects.get(period="hour", start=self.minute.replace(minute=0), task_name="testapp.add")
        self.assertEqual((hour.succeeded, hour.failed), (10, 1))
        add = minute[("testapp.add", "default")]
        self.assertEqual(sum(add.run.values()), 11)  # every finished job's run time, whatever its state
        self.assertAlmostEqual(percentile(add.run, 0.5), 2.0, delta=2.0 * (BASE - 1))
        self.assertAlmostEqual(percentile(add.wait, 0.5), 0.1, delta=0.1 * (BASE - 1))

        self.assertEqual(job_stats_count(now=self.now + timedelta(seconds=5)), 0)  # nothing twice
        finished("testapp.add", states.SUCCESS, done=self.now, wait=0.1, run=2.0)
        finished("testapp.add", states.SUCCESS, done=self.minute + timedelta(seconds=40), wait=0.1, run=2.0)
        # Finished before the last count but committed after it: past the lag, it is not seen.
        self.assertEqual(job_stats_count(now=self.now + timedelta(minutes=1)), 1)
        self.assertEqual(JobStats.objects.get(period="hour", start=self.minute.replace(minute=0),
                                              task_name="testapp.add").succeeded, 11)

    def test_no_odd_result_stops_the_count(self):
        """A chord body stored with no task name, a result with no job record (another Celery app's),
        no start time, a start after its end, a huge error: each is counted, and the count goes on."""
        done = self.minute + timedelta(seconds=10)
        unnamed = finished("testapp.xsum", states.FAILURE, done=done, wait=0.1, run=0.1)
        TaskResult.objects.filter(pk=unnamed.pk).update(task_name=None)
        TaskResult.objects.filter(pk=finished("testapp.add", states.SUCCESS, done=done, wait=0, run=0).pk).update(
            task_name="")
        foreign = TaskResult.objects.create(task_id="another-app", task_name="their.task", result="x" * 1_000_000,
                                            traceback="Traceback\n" * 100_000)
        TaskResult.objects.filter(pk=foreign.pk).update(status=states.FAILURE, date_done=done, date_started=None)
        backwards = finished("testapp.add", states.SUCCESS, done=done, wait=-5, run=-3)
        TaskResult.objects.filter(pk=backwards.pk).update(task_name="t" * 255)

        _unnamed_results_warn.cache_clear()  # said once a process: this test's process too
        with self.assertLogs("jobs.stats.services", "WARNING") as logs:
            self.assertEqual(job_stats_count(now=self.now), 4)
        self.assertIn("counted as '(unnamed)'", logs.output[0])
        totals = {(row.task_name, row.queue): row.counts for row in JobStats.objects.filter(period="total")}
        self.assertEqual(totals, {
            ("(unnamed)", "default"): {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 0},
            ("their.task", ""): {"SUCCESS": 0, "FAILURE": 1, "REVOKED": 0},
            ("t" * 255, "default"): {"SUCCESS": 1, "FAILURE": 0, "REVOKED": 0}})
        finished("testapp.add", states.SUCCESS, done=self.now, wait=0.1, run=0.1)
        self.assertEqual(job_stats_count(now=self.now + timedelta(minutes=1)), 1)  # and it goes on

    def test_results_finishing_within_the_lag_wait_for_the_next_count(self):
        finished("testapp.add", states.SUCCESS, done=self.now - timedelta(seconds=3), wait=0.1, run=0.1)
        self.assertEqual(job_stats_count(now=self.now), 0)
        self.assertEqual(job_stats_count(now=self.now + timedelta(seconds=20)), 1)

    def test_each_period_keeps_its_rows_for_its_own_time(self):
        finished("testapp.add", states.SUCCESS, done=self.now - timedelta(days=3), wait=0.1, run=0.1)
        finished("testapp.add", states.SUCCESS, done=self.now - timedelta(days=40), wait=0.1, run=0.1)
        self.assertEqual(job_stats_count(now=self.now), 2)
        kept = JobStats.objects.values_list("period").annotate(jobs=Sum("succeeded"))
        # Minutes are kept two days, hours and six hours 35, days 400, totals for ever.
        self.assertEqual(dict(kept), {"hour": 1, "6hours": 1, "day": 2, "total": 2})

        JobStats.objects.filter(period="minute").update(start=self.now)  # none yet: nothing to drop
        JobStats.objects.filter(period="hour").update(start=self.now - timedelta(days=36))
        job_stats_count(now=self.now + timedelta(minutes=1))
        self.assertFalse(JobStats.objects.filter(period="hour").exists())


class ChartsTests(TestCase):
    def setUp(self):
        now = timezone.now()
        for minutes_ago in (2, 3, 3, 40):
            finished("testapp.add", states.SUCCESS, done=now - timedelta(minutes=minutes_ago), wait=0.2, run=1.0)
        finished("testapp.add", states.FAILURE, done=now - timedelta(minutes=3), wait=0.2, run=1.0)
        finished("testapp.say_hello", states.SUCCESS, done=now - timedelta(minutes=3), wait=3, run=0.05, queue="email")
        job_stats_count()
        self.client.force_login(grant(User.objects.create_user("ops", is_staff=True), "jobs.view_queue"))

    def test_the_last_hour_per_minute_and_per_job_and_queue(self):
        figures = job_stats(period="hour")
        self.assertEqual(len(figures["points"]), 60)
        self.assertEqual(sum(point["total"] for point in figures["points"]), 6)
        add = figures["jobs"]["testapp.add"]
        self.assertEqual((add["total"], add["counts"]["FAILURE"], add["failure_rate"]), (5, 1, 0.2))
        self.assertAlmostEqual(figures["queues"]["email"]["wait_p50"], 3, delta=3 * (BASE - 1))
        self.assertEqual(job_stats(period="hour", queue="email")["total"]["total"], 1)
        self.assertEqual(job_stats(period="day")["total"]["total"], 6)

    def test_the_charts_page_draws_them_and_the_overview_counts_the_last_hour(self):
        page = self.client.get(reverse("admin:jobs_queue_charts"), {"period": "day", "job": "testapp.add"})
        self.assertContains(page, '<svg class="chart"', count=3)
        self.assertContains(page, "Jobs finished per hour")
        self.assertContains(page, "<th>testapp.add</th><td>5</td>", html=False)
        self.assertNotContains(page, "<th>testapp.say_hello</th>")
        overview = self.client.get(reverse("admin:jobs_queue_changelist"))
        self.assertContains(overview, "Jobs finished per minute")
        self.assertEqual((overview.context["counts"]["SUCCESS"], overview.context["counts"]["FAILURE"]), (5, 1))

    def test_an_unknown_period_shows_the_last_hour(self):
        page = self.client.get(reverse("admin:jobs_queue_charts"), {"period": "decade"})
        self.assertContains(page, "Jobs finished per minute")
