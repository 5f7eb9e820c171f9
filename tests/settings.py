"""The site's settings, for tests: plus the test app (a user's own app with @job functions) and
a test runner that gives the tests their own database, broker vhost and Redis database."""
from site_config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405
TEST_RUNNER = "tests.runner.TestRunner"
