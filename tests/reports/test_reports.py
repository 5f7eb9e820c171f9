"""The report job's file and its download."""
import shutil
import tempfile

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django_celery_results.models import TaskResult

from contacts.models import Contact
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
