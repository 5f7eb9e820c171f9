from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import SimpleTestCase, TestCase
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from django_celery_results.models import TaskResult

from jobs.catalog import catalog, find_job
from jobs.scheduling.checks import crontab_check, periodic_task_check
from jobs.scheduling.previews import next_runs, schedule_in_words
from jobs.scheduling.services import periodic_task_run_now
from tests.users import grant

BERLIN = ZoneInfo("Europe/Berlin")
UTC = UTC
ADD = "/admin/django_celery_beat/periodictask/add/"


def beat_sends(crontab: CrontabSchedule, start: datetime, end: datetime) -> list[datetime]:
    """When beat's own schedule object says the crontab is due, ticking every minute."""
    schedule = crontab.schedule
    now = start
    schedule.nowfun = lambda: now.astimezone(crontab.timezone)
    last_run, sent = start, []
    while now < end:
        if schedule.is_due(last_run)[0]:
            sent.append(now)
            last_run = now
        now += timedelta(minutes=1)
    return sent


def local(runs, zone=BERLIN) -> list[str]:
    return [f"{run.astimezone(zone):%m-%d %H:%M %Z}" for run in runs]


class NextRunsTests(SimpleTestCase):
    def crontab_task(self, hour, minute="30", zone=BERLIN, **fields):
        crontab = CrontabSchedule(minute=minute, hour=hour, timezone=zone, **fields)
        return PeriodicTask(name="t", task="testapp.add", crontab=crontab, enabled=True)

    def test_daily_crontab_keeps_its_wall_clock_time_across_spring_forward(self):
        """07:30 in Berlin is 06:30 UTC before 29 March 2026 and 05:30 UTC after it."""
        task = self.crontab_task("7")
        runs = next_runs(task, count=3, now=datetime(2026, 3, 28, 12, tzinfo=UTC))
        self.assertEqual(local(runs), ["03-29 07:30 CEST", "03-30 07:30 CEST", "03-31 07:30 CEST"])
        self.assertEqual([run.hour for run in runs], [5, 5, 5])
        self.assertEqual(next_runs(task, 1, now=datetime(2026, 3, 28, 0, tzinfo=UTC))[0].hour, 6)

    def test_daily_crontab_keeps_its_wall_clock_time_across_fall_back(self):
        runs = next_runs(self.crontab_task("7"), count=3, now=datetime(2026, 10, 24, 12, tzinfo=UTC))
        self.assertEqual(local(runs), ["10-25 07:30 CET", "10-26 07:30 CET", "10-27 07:30 CET"])

    def test_times_in_the_skipped_and_repeated_hours_run_once(self):
        """02:30 does not exist on 29 March (runs once, at 03:30) and exists twice on 25 October (once)."""
        spring = next_runs(self.crontab_task("2"), count=3, now=datetime(2026, 3, 28, 12, tzinfo=UTC))
        self.assertEqual(local(spring), ["03-29 03:30 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"])
        fall = next_runs(self.crontab_task("2"), count=3, now=datetime(2026, 10, 24, 12, tzinfo=UTC))
        self.assertEqual(local(fall), ["10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"])

    def test_preview_is_what_beat_does_on_transition_days(self):
        for hour in ("2", "3", "7"):
            for start in (datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 10, 23, 12, tzinfo=UTC)):
                with self.subTest(hour=hour, start=start):
                    task = self.crontab_task(hour)
                    preview = next_runs(task, count=4, now=start)
                    sent = beat_sends(task.crontab, start, preview[-1] + timedelta(minutes=1))
                    self.assertEqual(local(preview), local(sent))

    def test_weekly_crontab_in_its_own_time_zone(self):
        task = self.crontab_task("7", day_of_week="1", zone=ZoneInfo("Asia/Shanghai"))
        runs = next_runs(task, count=2, now=datetime(2026, 11, 21, tzinfo=UTC))  # a Saturday
        self.assertEqual([run.isoformat() for run in runs], ["2026-11-22T23:30:00+00:00", "2026-11-29T23:30:00+00:00"])
        self.assertEqual(schedule_in_words(task), "At 07:30 AM, only on Monday (Asia/Shanghai)")

    def test_interval_runs_after_the_last_run(self):
        task = PeriodicTask(name="t", task="testapp.add", enabled=True, interval=IntervalSchedule(every=5, period="seconds"),
                            last_run_at=datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC))
        runs = next_runs(task, count=3, now=datetime(2026, 1, 1, 12, 0, 2, tzinfo=UTC))
        self.assertEqual([run.second for run in runs], [5, 10, 15])
        self.assertEqual(schedule_in_words(task), "every 5 seconds")

    def test_solar_events(self):
        """Sunrise in Shanghai in late November is about 06:27 local time, once a day."""
        task = PeriodicTask(name="t", task="testapp.add", enabled=True,
                            solar=SolarSchedule(event="sunrise", latitude=31.23, longitude=121.47))
        runs = next_runs(task, count=3, now=datetime(2026, 11, 21, tzinfo=UTC))
        self.assertEqual(local(runs, ZoneInfo("Asia/Shanghai")), ["11-22 06:27 CST", "11-23 06:27 CST", "11-24 06:28 CST"])
        self.assertEqual(schedule_in_words(task), "Sunrise (31.23, 121.47)")

    def test_clocked_one_off_runs_once_and_disabled_tasks_never(self):
        moment = datetime(2030, 1, 1, 9, tzinfo=UTC)
        task = PeriodicTask(name="t", task="testapp.add", enabled=True, one_off=True,
                            clocked=ClockedSchedule(clocked_time=moment))
        self.assertEqual(next_runs(task), [moment])
        task.total_run_count = 1
        self.assertEqual(next_runs(task), [])
        task.total_run_count, task.enabled = 0, False
        self.assertEqual(next_runs(task), [])


class CrontabCheckTests(SimpleTestCase):
    def test_dates_that_never_come_are_refused(self):
        for day, month in (("31", "2"), ("30", "2"), ("31", "4"), ("31", "4,6,9,11")):
            with self.subTest(day=day, month=month), self.assertRaisesMessage(ValidationError, "never occurs"):
                crontab_check(CrontabSchedule(minute="0", hour="0", day_of_month=day, month_of_year=month))

    def test_rare_but_real_dates_are_accepted(self):
        crontab_check(CrontabSchedule(minute="0", hour="0", day_of_month="29", month_of_year="2"))
        crontab_check(CrontabSchedule(minute="0", hour="0", day_of_month="13", day_of_week="5"))  # Friday 13th
        crontab_check(CrontabSchedule(minute="0", hour="0", day_of_month="29", month_of_year="2", day_of_week="1"))

    def test_out_of_range_values_are_refused(self):
        with self.assertRaisesMessage(ValidationError, "Invalid crontab: Invalid end range: 61 > 59."):
            crontab_check(CrontabSchedule(minute="61", hour="0"))


class PeriodicTaskCheckTests(TestCase):
    def setUp(self):
        self.every_5s = IntervalSchedule.objects.create(every=5, period="seconds")

    def check(self, task="testapp.add", args="[]", kwargs="{}", **options):
        periodic_task_check(PeriodicTask(task=task, args=args, kwargs=kwargs, **options))

    def assertRefused(self, field, message, **fields):
        with self.assertRaises(ValidationError) as caught:
            self.check(**fields)
        self.assertIn(message, " ".join(caught.exception.message_dict[field]))

    def test_arguments_must_fit_the_jobs_types(self):
        self.check(args="[2, 3]")
        self.check(kwargs='{"x": 2, "y": 3}')
        self.assertRefused("args", "x: Input should be a valid integer", args='["two", 3]')
        self.assertRefused("args", "y: Field required", args="[2]")
        self.assertRefused("kwargs", "z: Extra inputs are not permitted", kwargs='{"x": 1, "y": 2, "z": 3}')

    def test_json_must_parse_and_have_the_right_shape(self):
        self.assertRefused("args", "Not valid JSON", args="[2, 3")
        self.assertRefused("args", "must be a JSON list", args='{"x": 2}')
        self.assertRefused("kwargs", "must be a JSON object", kwargs="[2]")

    def test_unknown_tasks_are_refused_but_celerys_own_are_allowed(self):
        self.assertRefused("task", "Unknown job 'jobs.typo'", task="jobs.typo")
        self.check(task="celery.backend_cleanup")

    def test_queues_exchanges_routing_keys_and_priorities_must_exist(self):
        """A typo'd queue would keep its jobs waiting forever where no worker reads."""
        for field, message, value in (("queue", "No queue 'defualt' is configured", "defualt"),
                                      ("exchange", "No exchange 'nowhere' is configured", "nowhere"),
                                      ("routing_key", "No routing key 'x' is configured", "x"),
                                      ("priority", "Priorities run from 0 to 9", 200)):
            with self.subTest(field=field):
                self.assertRefused(field, message, args="[1, 2]", **{field: value})
        self.check(args="[1, 2]", queue="long", exchange="default", routing_key="default", priority=9)

    def test_saving_from_code_is_checked_too(self):
        """A model-level check: nothing is saved with bad arguments, whoever saves it."""
        with self.assertRaises(ValidationError):
            PeriodicTask.objects.create(name="bad", task="testapp.add", args='["two", 3]', interval=self.every_5s)
        self.assertFalse(PeriodicTask.objects.filter(name="bad").exists())
        with self.assertRaisesMessage(ValidationError, "never occurs"):
            CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="31", month_of_year="2")


class RunNowTests(TestCase):
    def test_run_now_sends_the_stored_arguments_queue_and_options(self):
        """Unlike stock 'run selected', the queue, routing, priority, expiry and headers go along."""
        task = PeriodicTask.objects.create(
            name="nightly add", task="testapp.add", args="[2, 3]",
            interval=IntervalSchedule.objects.create(every=1, period="days"),
            queue="default", exchange="default", routing_key="default", priority=7, expire_seconds=600,
            headers='{"origin": "ops"}',
        )
        with mock.patch.object(find_job("testapp.add"), "apply_async") as apply_async, \
                self.captureOnCommitCallbacks(execute=True):
            launched = periodic_task_run_now(periodic_task=task)
        apply_async.assert_called_once_with(
            kwargs={"x": 2, "y": 3}, task_id=launched.task_id, queue="default", exchange="default",
            routing_key="default", priority=7, expires=600,
            headers={"origin": "ops", "periodic_task_name": "nightly add"},
        )
        self.assertEqual(TaskResult.objects.get(task_id=launched.task_id).periodic_task_name, "nightly add")


class PeriodicTaskAdminTests(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("root", password="pw"))
        self.every_5s = IntervalSchedule.objects.create(every=5, period="seconds")

    def form(self, **fields):
        return {
            "name": "add 2 + 3 every 5 seconds", "regtask": "testapp.add", "enabled": "on",
            "interval": self.every_5s.pk, "args": "[2, 3]", "kwargs": "{}", **fields,
        }

    def test_jobs_are_picked_from_the_catalog(self):
        response = self.client.get(ADD)
        choices = [value for value, _ in response.context["adminform"].form.fields["regtask"].choices]
        self.assertEqual(choices, ["", *catalog()])
        self.assertLessEqual({"testapp.add", "testapp.countdown", "testapp.purge", "testapp.say_hello"}, set(choices))
        self.assertContains(response, "testapp.add(x: int, y: int) — Add two integers")

    def test_wrong_arguments_are_a_form_error_and_nothing_is_saved(self):
        response = self.client.post(ADD, self.form(args='["two", 3]'))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors["args"],
            ["Invalid arguments for testapp.add: x: Input should be a valid integer"],
        )
        self.assertFalse(PeriodicTask.objects.filter(name__startswith="add 2 + 3").exists())

    def test_json_that_does_not_parse_is_one_clear_error(self):
        response = self.client.post(ADD, self.form(args='["two", 3][]'))
        self.assertEqual(response.context["adminform"].form.errors["args"],
                         ["Unable to parse JSON: Extra data: line 1 column 11 (char 10)"])

    def test_a_valid_task_is_saved_and_shows_its_schedule_and_next_runs(self):
        response = self.client.post(ADD, self.form())
        self.assertEqual(response.status_code, 302)
        task = PeriodicTask.objects.get(name="add 2 + 3 every 5 seconds")
        self.assertEqual((task.task, task.args), ("testapp.add", "[2, 3]"))

        changelist = self.client.get("/admin/django_celery_beat/periodictask/")
        self.assertContains(changelist, "every 5 seconds")
        page = self.client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
        self.assertEqual(page.content.decode().count("<div>20"), 5)  # five run times, this century
        self.assertContains(page, "?periodic_task_name=add+2+%2B+3+every+5+seconds")

    def test_preview_before_saving(self):
        crontab = CrontabSchedule.objects.create(minute="30", hour="7", day_of_week="1", timezone="Asia/Shanghai")
        body = self.client.get("/admin/django_celery_beat/periodictask/preview/", {"crontab": crontab.pk}).json()
        self.assertEqual(body["schedule"], "At 07:30 AM, only on Monday (Asia/Shanghai)")
        self.assertEqual(len(body["next_runs"]), 5)
        both = self.client.get("/admin/django_celery_beat/periodictask/preview/",
                               {"crontab": crontab.pk, "interval": self.every_5s.pk}).json()
        self.assertEqual(both["error"], "Choose exactly one schedule.")

    def test_last_run_shows_its_outcome(self):
        self.client.post(ADD, self.form())
        task = PeriodicTask.objects.get(task="testapp.add", interval=self.every_5s)
        PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=datetime(2026, 1, 1, tzinfo=UTC))
        TaskResult.objects.create(task_id="r1", periodic_task_name=task.name, status="FAILURE")
        self.assertContains(self.client.get("/admin/django_celery_beat/periodictask/"), "(FAILURE)")

    def test_last_run_comes_from_the_runs_even_once_the_task_is_disabled(self):
        """Disabling a task clears its last_run_at; a Run now never sets it. The runs tell."""
        self.client.post(ADD, self.form())
        task = PeriodicTask.objects.get(task="testapp.add", interval=self.every_5s)
        TaskResult.objects.create(task_id="r1", periodic_task_name=task.name, status="SUCCESS")
        task.enabled = False
        task.save()
        self.assertIsNone(PeriodicTask.objects.get(pk=task.pk).last_run_at)
        page = self.client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
        self.assertContains(page, "(SUCCESS)")
        self.assertNotContains(page, "Never")

    def test_a_task_whose_runs_keep_no_result_is_not_shown_as_never_run(self):
        self.client.post(ADD, self.form())
        task = PeriodicTask.objects.get(task="testapp.add", interval=self.every_5s)
        PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=datetime(2026, 1, 1, tzinfo=UTC), total_run_count=4)
        page = self.client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
        self.assertContains(page, "2026-01-01 00:00:00 UTC (sent; no result kept)")
        PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=None)  # as disabling leaves it
        page = self.client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
        self.assertContains(page, "4 runs sent; no result kept")
        self.assertNotContains(page, "Never")

    def test_a_disabled_task_previews_no_runs_and_a_bad_row_shows_its_problem(self):
        body = self.client.get("/admin/django_celery_beat/periodictask/preview/",
                               {"interval": self.every_5s.pk, "enabled": "false"}).json()
        self.assertEqual(body["next_runs"], [])
        self.client.post(ADD, self.form())
        task = PeriodicTask.objects.get(task="testapp.add", interval=self.every_5s)
        PeriodicTask.objects.filter(pk=task.pk).update(args='["two", 3]', enabled=False)
        self.assertContains(self.client.get("/admin/django_celery_beat/periodictask/"),
                            "args: Invalid arguments for testapp.add: x: Input should be a valid integer")

    def test_run_now_button_and_action_report_the_new_job(self):
        self.client.post(ADD, self.form())
        task = PeriodicTask.objects.get(task="testapp.add", interval=self.every_5s)
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/run-now/", follow=True)
            job = TaskResult.objects.get(periodic_task_name=task.name)
            self.assertContains(response, f"started job <a href=\"/admin/django_celery_results/taskresult/?q={job.task_id}")
            response = self.client.post("/admin/django_celery_beat/periodictask/",
                                        {"action": "run_now", "_selected_action": [task.pk]}, follow=True)
        self.assertEqual(TaskResult.objects.filter(periodic_task_name=task.name).count(), 2)
        self.assertContains(response, "started job")

    def test_scheduling_a_restricted_job_takes_the_permission_to_launch_it(self):
        """Beat would launch it on their behalf: a staff user who may edit periodic tasks but not
        launch restricted jobs can neither schedule one, nor change, enable or run an existing one."""
        scheduler = grant(User.objects.create_user("scheduler", is_staff=True), "django_celery_beat.add_periodictask",
                          "django_celery_beat.change_periodictask", "django_celery_beat.view_periodictask")
        self.client.force_login(scheduler)
        choices = [value for value, _ in self.client.get(ADD).context["adminform"].form.fields["regtask"].choices]
        self.assertNotIn("testapp.purge", choices)
        response = self.client.post(ADD, self.form(name="purge", regtask="testapp.purge", args="[]"))
        self.assertIn("testapp.purge is not one of the available choices",
                      str(response.context["adminform"].form.errors["regtask"]))
        self.assertFalse(PeriodicTask.objects.filter(name="purge").exists())

        existing = PeriodicTask.objects.create(name="purge", task="testapp.purge", interval=self.every_5s, enabled=False)
        response = self.client.post(f"/admin/django_celery_beat/periodictask/{existing.pk}/change/",
                                    self.form(name="purge", regtask="testapp.add"))
        self.assertIn("testapp.purge is restricted", str(response.context["adminform"].form.errors["regtask"]))
        for action in ("enable_tasks", "toggle_tasks"):
            self.client.post("/admin/django_celery_beat/periodictask/", {"action": action, "_selected_action": [existing.pk]})
        with mock.patch.object(find_job("testapp.purge"), "apply_async") as apply_async:
            self.client.post(f"/admin/django_celery_beat/periodictask/{existing.pk}/run-now/")
        apply_async.assert_not_called()
        existing.refresh_from_db()
        self.assertEqual((existing.task, existing.enabled), ("testapp.purge", False))

        self.client.force_login(grant(scheduler, "jobs.launch_restricted_job"))
        self.assertEqual(self.client.post(ADD, self.form(name="purge 2", regtask="testapp.purge", args="[]")).status_code,
                         302)

    def test_impossible_crontab_is_a_form_error(self):
        response = self.client.post("/admin/django_celery_beat/crontabschedule/add/", {
            "minute": "0", "hour": "0", "day_of_month": "31", "month_of_year": "2", "day_of_week": "*",
            "timezone": "UTC",
        })
        self.assertContains(response, "day_of_month &#x27;31&#x27; never occurs in month_of_year &#x27;2&#x27;")
        self.assertFalse(CrontabSchedule.objects.filter(day_of_month="31").exists())
