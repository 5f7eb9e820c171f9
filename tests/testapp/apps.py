from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """A user's own app built on the engine, as docs/how-to/add-a-job.md shows."""

    name = "tests.testapp"
    label = "testapp"
