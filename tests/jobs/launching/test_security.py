"""Bad and hostile input: rate limits, fuzzing the API, no pickle."""
from unittest import mock

from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, SimpleTestCase, TestCase, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from jobs.catalog import find_job
from jobs.models import JobRecord
from jobs.throttling import JobLaunchThrottle


@override_settings(JOBS_LAUNCH_RATE="3/m")
class LaunchRateTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("alice")
        self.client.force_login(self.user)

    def launch(self, client=None):
        return (client or self.client).post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                            content_type="application/json")

    def test_launching_past_the_rate_is_429_with_retry_after_and_launches_nothing(self):
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            codes = [self.launch().status_code for _ in range(4)]
        self.assertEqual(codes, [202, 202, 202, 429])
        self.assertEqual(JobRecord.objects.count(), 3)
        response = self.launch()
        self.assertIn("the limit is 3 per m (JOBS_LAUNCH_RATE)", response.json()["detail"])
        self.assertGreater(int(response["Retry-After"]), 0)

    def test_the_limit_is_per_user(self):
        other = Client()
        other.force_login(User.objects.create_user("bob"))
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            for _ in range(3):
                self.launch()
            response = self.launch(other)
        self.assertEqual(response.status_code, 202)

    def test_the_launch_page_is_limited_too(self):
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            codes = [self.client.post("/jobs/new/", {"job": "testapp.add", "x": "1", "y": "2"}).status_code
                     for _ in range(4)]
        self.assertEqual(codes, [302, 302, 302, 429])


class LaunchRateSettingTests(SimpleTestCase):
    @override_settings(JOBS_LAUNCH_RATE="60 a minute")
    def test_a_malformed_rate_stops_the_start_with_what_to_write(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "JOBS_LAUNCH_RATE is '60 a minute': give launches per "
                                                            "period, as 60/m"):
            JobLaunchThrottle()


@override_settings(JOBS_LAUNCH_RATE="10/m")
class WorkflowCostTests(TestCase):
    """What one request may cost: a workflow's steps count as launches, and one person's unfinished
    jobs are capped, so no one user can make the web process write thousands of jobs at once."""

    def setUp(self):
        self.user = User.objects.create_user("mallory")
        self.client.force_login(self.user)

    def launch_workflow(self, steps: int):
        spec = {"group": [{"job": "testapp.add", "kwargs": {"x": n, "y": n}} for n in range(steps)]}
        return self.client.post("/api/workflows/", spec, content_type="application/json")

    def test_each_step_counts_against_the_launch_rate(self):
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(self.launch_workflow(6).status_code, 201)
            response = self.launch_workflow(6)  # 6 + 6 > 10
            self.assertEqual(response.status_code, 429, response.content)
            self.assertIn("more than are left of JOBS_LAUNCH_RATE (10 per m)", response.json()["detail"])
            self.assertGreater(int(response["Retry-After"]), 0)
            self.assertEqual(self.launch_workflow(3).status_code, 201)  # 6 + 3 + the refused request's 1
        self.assertEqual(JobRecord.objects.count(), 9)

    def test_a_workflow_larger_than_the_whole_budget_is_refused_before_anything_is_written(self):
        response = self.launch_workflow(11)
        self.assertEqual(response.status_code, 429)
        self.assertIn("11 steps, more than JOBS_LAUNCH_RATE (10 per m) lets one person launch at once",
                      response.json()["detail"])
        self.assertFalse(JobRecord.objects.exists())

    @override_settings(JOBS_LAUNCH_RATE="1000/m", JOBS_MAX_UNFINISHED=5)
    def test_one_persons_unfinished_jobs_are_capped_and_others_are_not_held_up(self):
        with mock.patch.object(find_job("testapp.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            self.assertEqual(self.launch_workflow(4).status_code, 201)
            response = self.launch_workflow(2)
            self.assertEqual(response.status_code, 429)
            self.assertIn("You have 4 jobs queued or running; with 2 more that is over JOBS_MAX_UNFINISHED (5)",
                          response.json()["detail"])
            self.assertEqual(self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                              content_type="application/json").status_code, 202)
            self.assertEqual(self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                              content_type="application/json").status_code, 429)
            other = Client()
            other.force_login(User.objects.create_user("bob"))
            self.assertEqual(self.client.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                              content_type="application/json").status_code, 429)
            self.assertEqual(other.post("/api/jobs/", {"task": "testapp.add", "args": [1, 2]},
                                        content_type="application/json").status_code, 202)
        self.assertEqual(JobRecord.objects.filter(launched_by=self.user).count(), 5)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@override_settings(JOBS_LAUNCH_RATE="100000/m")
class ApiFuzzTests(HypothesisTestCase):
    """Generated bad input never makes the API answer 500, and never enqueues an invalid job."""

    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("fuzz")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=st.one_of(
        json_values,
        st.fixed_dictionaries({"task": st.sampled_from(["testapp.add", "testapp.countdown", "testapp.say_hello", "x"])
                                       | st.text(),
                               "args": json_values, "kwargs": json_values}),
        st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
    ))
    def test_launch_never_fails_with_a_server_error(self, body):
        import json

        data = body if isinstance(body, str) else json.dumps(body)
        self.client.force_login(self.user)
        with mock.patch.object(find_job("testapp.add"), "apply_async"), \
                mock.patch.object(find_job("testapp.countdown"), "apply_async"), \
                mock.patch.object(find_job("testapp.say_hello"), "apply_async"), \
                self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/api/jobs/", data, content_type="application/json")
        self.assertLess(response.status_code, 500, response.content)
        self.assertIn(response.status_code, (202, 400, 403, 422))
        self.assertIn("detail" if response.status_code != 202 else "id", response.json())

    @settings(max_examples=60, deadline=None)
    @given(path=st.text(max_size=40), query=st.dictionaries(st.sampled_from(["status", "task", "page"]),
                                                            st.text(max_size=10), max_size=3))
    def test_reads_never_fail_with_a_server_error(self, path, query):
        from urllib.parse import quote

        self.client.force_login(self.user)
        for url in (f"/api/jobs/{quote(path, safe='')}/", "/api/jobs/"):
            response = self.client.get(url, query)
            self.assertLess(response.status_code, 500, (url, query, response.content))
