"""An outside fuzzer against the published schema: every answer the API gives is one its OpenAPI
schema declares, with the declared content type and body shape, and none is a server error."""
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_token_create

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SCHEMA = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())
CASES = st.one_of(SCHEMA.as_strategy(GenerationMode.POSITIVE), SCHEMA.as_strategy(GenerationMode.NEGATIVE))


@override_settings(JOBS_LAUNCH_RATE="1000000/m")
class SchemaConformanceTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        _, cls.token = api_token_create(user=User.objects.create_user("fuzz"), name="schemathesis")

    def setUp(self):
        # As Django's test client does: a request must not close the test's connection.
        for signal in (request_started, request_finished):
            signal.disconnect(close_old_connections)
            self.addCleanup(signal.connect, close_old_connections)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=CASES)
    def test_every_answer_is_in_the_schema(self, case):
        case.call_and_validate(headers={"Authorization": f"Bearer {self.token}"}, checks=CHECKS)
