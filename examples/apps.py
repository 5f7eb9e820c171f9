from django.apps import AppConfig


class ExamplesConfig(AppConfig):
    """The seeds' small jobs: add, say_hello, countdown, probe and the scraper's fetch_url."""

    name = "examples"
    verbose_name = "Examples"
