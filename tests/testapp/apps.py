from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """A user's own app built on the engine, as the README's "Add your own job" shows."""

    name = "tests.testapp"
    label = "testapp"
