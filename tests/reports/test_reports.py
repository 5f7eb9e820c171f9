"""The report job's file and its download."""
import shutil
import tempfile
from datetime import date, timedelta
from unittest import mock

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django.utils import timezone
from django_celery_results.models import TaskResult

from contacts.models import Contact
from jobs.launching.services import job_launch
from jobs.records.models import UniqueKey
from reports import services
from reports.models import Report
from tests.users import grant


class ReportTests(TestCase):
    def setUp(self):
        media = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, media)
        self.enterContext(override_settings(MEDIA_ROOT=media))

    def test_report_counts_jobs_per_day_and_status_and_is_downloadable_with_the_view_permission(self):
        TaskResult.objects.create(task_id="a", status="SUCCESS")
        TaskResult.objects.create(task_id="b", status="FAILURE")
        TaskResult.objects.create(task_id="c", status="SUCCESS")
        Contact.objects.create(email="ada@x.io", name="Ada")
        report = services.report_build(days=7)
        lines = report.file.open("rb").read().decode().splitlines()
        self.assertEqual(lines[1], "day,FAILURE,SUCCESS,total")
        self.assertTrue(lines[2].endswith(",1,2,3"))
        self.assertEqual(lines[-1], "contacts,1")

        self.client.force_login(User.objects.create_user("someone"))
        self.assertEqual(self.client.get(f"/reports/{report.pk}/").status_code, 403)
        staff = User.objects.create_user("boss", is_staff=True)
        self.client.force_login(staff)
        self.assertEqual(self.client.get(f"/reports/{report.pk}/").status_code, 403)  # staff alone is not enough
        self.client.force_login(grant(staff, "reports.view_report"))
        response = self.client.get(f"/reports/{report.pk}/")
        self.assertEqual(b"".join(response.streaming_content).decode().splitlines()[-1], "contacts,1")
        self.assertEqual(Report.objects.count(), 1)


class OneReportADayTests(TestCase):
    def test_asked_again_the_same_day_it_is_the_same_report_and_the_next_day_a_new_one(self):
        first = job_launch(name="jobs.build_report", kwargs={"days": 7}, system=True)
        TaskResult.objects.filter(task_id=first.task_id).update(status="SUCCESS")
        again = job_launch(name="jobs.build_report", kwargs={"days": 7}, system=True)
        other_span = job_launch(name="jobs.build_report", kwargs={"days": 30}, system=True)
        self.assertEqual((again.task_id, again.launched), (first.task_id, False))
        self.assertTrue(other_span.launched)
        with mock.patch("reports.tasks.timezone.localdate", return_value=date.today() + timedelta(days=1)):
            tomorrow = job_launch(name="jobs.build_report", kwargs={"days": 7}, system=True)
        self.assertTrue(tomorrow.launched)
        self.assertLessEqual(UniqueKey.objects.get(task_id=first.task_id).held_until,
                             timezone.now() + timedelta(days=1))
