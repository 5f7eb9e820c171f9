"""Bad and hostile input: rate limits, fuzzing the API, no pickle."""
from unittest import mock

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from jobs.catalog import find_job
from jobs.models import JobRecord
from jobs.services import api_token_create


@override_settings(JOBS_LAUNCH_RATE="3/m")
class LaunchRateTests(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("alice")
        _, self.token = api_token_create(user=self.user, name="tests")

    def test_launching_past_the_rate_is_429_with_retry_after_and_launches_nothing(self):
        with mock.patch.object(find_job("jobs.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            codes = [
                self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]}, content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {self.token}").status_code
                for _ in range(4)
            ]
        self.assertEqual(codes, [202, 202, 202, 429])
        self.assertEqual(JobRecord.objects.count(), 3)
        response = self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]}, content_type="application/json",
                                    HTTP_AUTHORIZATION=f"Bearer {self.token}")
        self.assertIn("the limit is 3 per m (JOBS_LAUNCH_RATE)", response.json()["detail"])
        self.assertGreater(int(response["Retry-After"]), 0)

    def test_the_limit_is_per_user(self):
        other = User.objects.create_user("bob")
        _, token = api_token_create(user=other, name="tests")
        with mock.patch.object(find_job("jobs.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            for _ in range(3):
                self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]}, content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {self.token}")
            response = self.client.post("/api/jobs/", {"task": "jobs.add", "args": [1, 2]},
                                        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        self.assertEqual(response.status_code, 202)

    def test_pages_and_sign_up_are_limited_too(self):
        self.client.force_login(self.user)
        with mock.patch.object(find_job("jobs.add"), "apply_async"), self.captureOnCommitCallbacks(execute=True):
            codes = [self.client.post("/jobs/new/", {"job": "jobs.add", "x": "1", "y": "2"}).status_code
                     for _ in range(4)]
        self.assertEqual(codes, [302, 302, 302, 429])
        self.client.logout()
        with self.captureOnCommitCallbacks():
            codes = [self.client.post("/accounts/signup/", {
                "username": f"new{n}", "email": f"new{n}@example.com",
                "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}).status_code for n in range(4)]
        self.assertEqual(codes, [200, 200, 200, 429])
        self.assertFalse(User.objects.filter(username="new3").exists())


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
        _, cls.token = api_token_create(user=cls.user, name="fuzz")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=st.one_of(
        json_values,
        st.fixed_dictionaries({"task": st.sampled_from(["jobs.add", "jobs.countdown", "jobs.say_hello", "x"]) | st.text(),
                               "args": json_values, "kwargs": json_values}),
        st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
    ))
    def test_launch_never_fails_with_a_server_error(self, body):
        import json

        data = body if isinstance(body, str) else json.dumps(body)
        with mock.patch.object(find_job("jobs.add"), "apply_async"), \
                mock.patch.object(find_job("jobs.countdown"), "apply_async"), \
                mock.patch.object(find_job("jobs.say_hello"), "apply_async"), \
                self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/api/jobs/", data, content_type="application/json",
                                        HTTP_AUTHORIZATION=f"Bearer {self.token}")
        self.assertLess(response.status_code, 500, response.content)
        self.assertIn(response.status_code, (202, 400, 403, 422))
        self.assertIn("detail" if response.status_code != 202 else "id", response.json())

    @settings(max_examples=60, deadline=None)
    @given(path=st.text(max_size=40), query=st.dictionaries(st.sampled_from(["status", "task", "page"]),
                                                            st.text(max_size=10), max_size=3))
    def test_reads_never_fail_with_a_server_error(self, path, query):
        from urllib.parse import quote

        for url in (f"/api/jobs/{quote(path, safe='')}/", "/api/jobs/"):
            response = self.client.get(url, query, HTTP_AUTHORIZATION=f"Bearer {self.token}")
            self.assertLess(response.status_code, 500, (url, query, response.content))
