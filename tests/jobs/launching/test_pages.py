"""The pages people use to launch and follow their jobs."""
from django.contrib.auth.models import User
from django.test import TestCase
from django_celery_results.models import TaskResult

from jobs.launching.services import job_launch
from jobs.models import JobRecord
from tests.users import grant


class PageTests(TestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice")
        self.bob = User.objects.create_user("bob")
        with self.captureOnCommitCallbacks():
            self.alices = job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice)
            self.bobs = job_launch(name="testapp.say_hello", args=["Bob"], launched_by=self.bob)
        self.client.force_login(self.alice)

    def test_anonymous_visitors_are_sent_to_sign_in(self):
        self.client.logout()
        self.assertRedirects(self.client.get("/jobs/"), "/accounts/login/?next=/jobs/")

    def test_the_list_shows_my_jobs_only_and_those_with_the_view_permission_see_everyone(self):
        response = self.client.get("/jobs/")
        self.assertContains(response, self.alices.task_id)
        self.assertNotContains(response, self.bobs.task_id)
        staff = User.objects.create_user("staff", is_staff=True)
        self.client.force_login(staff)
        self.assertNotContains(self.client.get("/jobs/"), self.alices.task_id)  # staff alone: their own
        self.client.force_login(grant(staff, "django_celery_results.view_taskresult"))
        response = self.client.get("/jobs/")
        self.assertContains(response, self.alices.task_id)
        self.assertContains(response, self.bobs.task_id)

    def test_the_list_filters_by_status_and_job(self):
        TaskResult.objects.filter(pk=self.alices.pk).update(status="SUCCESS")
        self.assertContains(self.client.get("/jobs/?status=SUCCESS"), self.alices.task_id)
        self.assertNotContains(self.client.get("/jobs/?status=FAILURE"), self.alices.task_id)
        self.assertNotContains(self.client.get("/jobs/?task=testapp.countdown"), self.alices.task_id)

    def test_the_job_filter_offers_an_ordinary_user_only_the_jobs_they_may_launch(self):
        self.assertNotContains(self.client.get("/jobs/"), "<option >testapp.purge</option>", html=False)
        self.client.force_login(grant(User.objects.create_user("ops"), "django_celery_results.view_taskresult"))
        self.assertContains(self.client.get("/jobs/"), "<option >testapp.purge</option>", html=False)

    def test_the_list_refreshes_itself(self):
        page = self.client.get("/jobs/")
        self.assertContains(page, '<div id="job-rows" data-live="5">', html=False)
        self.assertContains(page, "/static/jobs/live.js")

    def test_someone_elses_job_is_404(self):
        self.assertEqual(self.client.get(f"/jobs/{self.bobs.task_id}/").status_code, 404)
        self.assertEqual(self.client.get("/jobs/not-a-uuid/").status_code, 404)

    def test_new_lists_the_catalog_and_builds_a_form_from_the_types(self):
        self.assertContains(self.client.get("/jobs/new/"), "testapp.countdown(seconds: int)")
        form = self.client.get("/jobs/new/?job=testapp.countdown").context["form"]
        self.assertEqual(list(form.fields), ["seconds"])
        self.assertEqual((form.fields["seconds"].min_value, form.fields["seconds"].max_value), (1, 600))
        self.assertContains(self.client.get("/jobs/new/?job=testapp.purge", follow=True), "testapp.purge is restricted")
        self.client.force_login(grant(User.objects.create_user("ops"), "jobs.launch_restricted_job"))
        report = self.client.get("/jobs/new/?job=testapp.purge").context["form"]
        self.assertEqual((report.fields["older_than_days"].required, report.fields["older_than_days"].initial), (False, 30))

    def test_submitting_the_form_launches_the_job_and_shows_it(self):
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post("/jobs/new/", {"job": "testapp.add", "x": "4", "y": "4"})
        record = JobRecord.objects.get(origin="page")
        self.assertRedirects(response, f"/jobs/{record.result.task_id}/", fetch_redirect_response=False)
        self.assertEqual((record.launched_by, record.arguments["kwargs"]), (self.alice, {"x": 4, "y": 4}))
        self.assertEqual(len(callbacks), 1)
        page = self.client.get(f"/jobs/{record.result.task_id}/")
        self.assertContains(page, "PENDING")
        self.assertContains(page, '<progress id="progress"')

    def test_bad_input_is_a_form_error_and_nothing_is_launched(self):
        response = self.client.post("/jobs/new/", {"job": "testapp.countdown", "seconds": "0"})
        self.assertContains(response, "Ensure this value is greater than or equal to 1.")
        response = self.client.post("/jobs/new/", {"job": "testapp.add", "x": "four", "y": "4"})
        self.assertContains(response, "Enter a whole number.")
        self.assertFalse(JobRecord.objects.filter(origin="page").exists())

    def test_unknown_job_goes_back_to_the_list_with_a_message(self):
        response = self.client.get("/jobs/new/?job=jobs.nope", follow=True)
        self.assertContains(response, "Unknown job &#x27;jobs.nope&#x27;")


class BadListQueryTests(TestCase):
    """Query strings that used to end in a server error get a clear 4xx."""

    def setUp(self):
        self.client.force_login(User.objects.create_user("alice"))

    def test_pages_out_of_range_or_not_numbers(self):
        for page in ("²", "0", "-1", "9223372036854775807", "10001"):
            with self.subTest(page=page):
                response = self.client.get("/jobs/", {"page": page})
                self.assertContains(response, "page must be between 1 and 10,000", status_code=400)
        response = self.client.get("/api/jobs/", {"page": "9223372036854775807"})
        self.assertEqual(response.status_code, 422)
        self.assertIn("page must be between 1 and 10,000", response.json()["detail"])

    def test_nul_characters_in_the_query_string(self):
        for url in ("/jobs/?task=%00", "/jobs/?status=%00", "/api/jobs/?task=%00", "/api/jobs/?status=a%00",
                    "/admin/django_celery_results/taskresult/?q=%00", "/admin/django_celery_beat/periodictask/?q=%00"):
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 400)
                self.assertIn(b"NUL characters (%00) are not allowed", response.content)


class LaunchFormTests(TestCase):
    """Every argument type gets the input that fits it, and what it sends validates."""

    def setUp(self):
        self.client.force_login(User.objects.create_user("alice"))

    def test_inputs_fit_the_types(self):
        page = self.client.get("/jobs/new/?job=testapp.remind")
        fields = page.context["form"].fields
        self.assertContains(page, 'type="url"')
        self.assertContains(page, 'type="datetime-local"')
        self.assertContains(page, 'type="date"')
        self.assertEqual([value for value, _ in fields["level"].choices], ["low", "high"])
        self.assertContains(page, "<textarea")  # the list, one per line
        self.assertEqual((fields["repeat"].min_value, fields["repeat"].max_value), (1, 3))
        self.assertContains(page, 'type="checkbox"')

    def test_the_form_launches_with_json_arguments(self):
        with self.captureOnCommitCallbacks():
            response = self.client.post("/jobs/new/", {
                "job": "testapp.remind", "url": "example.com/report", "at": "2026-12-01T09:30", "day": "2026-12-02",
                "level": "high", "tags": "a\nb", "repeat": "2", "urgent": "on",
            })
        record = JobRecord.objects.get(origin="page")
        self.assertRedirects(response, f"/jobs/{record.result.task_id}/", fetch_redirect_response=False)
        self.assertEqual(record.arguments["kwargs"], {
            "url": "https://example.com/report", "at": "2026-12-01T09:30:00Z", "day": "2026-12-02", "level": "high",
            "tags": ["a", "b"], "repeat": 2, "urgent": True,
        })


class ConsistencyTests(TestCase):
    """One way of showing each thing, on every page."""

    def setUp(self):
        self.alice = User.objects.create_user("alice")
        self.client.force_login(self.alice)
        with self.captureOnCommitCallbacks():
            self.result = job_launch(name="testapp.add", args=[1, 2], launched_by=self.alice)
        TaskResult.objects.filter(pk=self.result.pk).update(status="SUCCESS", result='{"total": 3, "parts": [1, 2]}')

    def test_text_in_any_language_is_shown_as_written(self):
        TaskResult.objects.filter(pk=self.result.pk).update(result='"Zoë’s report – 完成"')
        page = self.client.get(f"/jobs/{self.result.task_id}/")
        self.assertContains(page, "&quot;Zoë’s report – 完成&quot;")
        self.assertNotContains(page, "\\u00eb")

    def test_the_job_page_shows_what_the_api_does(self):
        page = self.client.get(f"/jobs/{self.result.task_id}/").content.decode()
        api = self.client.get(f"/api/jobs/{self.result.task_id}/").json()
        # As the live script writes the API's ISO 8601 (job_detail.js, when()): to the second, no "T".
        self.assertRegex(page, rf"<dd><time datetime=\"[^\"]+\">{api['created_at'].replace('T', ' ')[:19]}</time></dd>")
        self.assertIn('{\n  &quot;total&quot;: 3,\n  &quot;parts&quot;: [\n    1,\n    2\n  ]\n}', page)  # JSON
        self.assertIn("<code>{&quot;args&quot;: [], &quot;kwargs&quot;: {&quot;x&quot;: 1, &quot;y&quot;: 2}}</code>", page)

    def test_403_and_404_pages_say_why_in_the_sites_pages(self):
        response = self.client.get("/jobs/6a0f8f2e-9a53-4d8e-9a89-3b0c8b1f1f10/")
        self.assertContains(response, "No such job, or not yours.", status_code=404)
        self.assertContains(response, "Back to the jobs", status_code=404)
        other = User.objects.create_user("bob")
        with self.captureOnCommitCallbacks():
            bobs = job_launch(name="testapp.add", args=[1, 2], launched_by=other)
        self.client.force_login(grant(User.objects.create_user("viewer"), "django_celery_results.view_taskresult"))
        response = self.client.post(f"/jobs/{bobs.task_id}/retry/")
        self.assertContains(response, "Whoever launched a job may retry or cancel it", status_code=403)
