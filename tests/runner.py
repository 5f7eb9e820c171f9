"""Django's test runner, plus a RabbitMQ virtual host of the tests' own.

Tests get `test_<name>` as their database; here they also get `test_<vhost>` as their broker
virtual host, so a worker of a running `make run` never takes the tests' jobs (nor the tests'
worker a real job); worker subprocesses inherit it through CELERY_BROKER_URL. RabbitMQ's
management API, which the operations pages read, is enabled.
"""
import os

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.runner import DiscoverRunner

from jobs.records import alongside
from jobs.testing.broker import management_plugin_enable, recreate_vhost, url_vhost_and_user, vhost_url
from jobs.testing.pgbouncer import PgBouncer
from site_config import celery_app


def test_broker_url(url: str) -> tuple[str, str, str]:
    """The test URL for broker `url`, with its vhost and user."""
    vhost, user = url_vhost_and_user(url)
    test_vhost = "test" if vhost == "/" else f"test_{vhost}"
    return vhost_url(url, test_vhost), test_vhost, user


class TestRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        # A Redis database of the tests' own for the cache (launch counters), emptied each run.
        test_cache = {**settings.CACHES["default"], "LOCATION": settings.REDIS_URL.rsplit("/", 1)[0] + "/15"}
        self.cache_override = override_settings(CACHES={"default": test_cache})
        self.cache_override.enable()
        cache.clear()
        if getattr(settings, "PGBOUNCER_PORT", None):  # tests.settings_pgbouncer
            self.pgbouncer = PgBouncer(port=settings.PGBOUNCER_PORT).start()
        url, vhost, user = test_broker_url(celery_app.conf.broker_url)
        recreate_vhost(vhost, user)
        management_plugin_enable()
        celery_app.conf.broker_url = os.environ["CELERY_BROKER_URL"] = url

    def teardown_databases(self, old_config, **kwargs):
        alongside.close()  # its connection would keep the test database from being dropped
        if getattr(self, "pgbouncer", None):  # its pooled connections would keep the test database from being dropped
            self.pgbouncer.disconnect(connection.settings_dict["NAME"])
        super().teardown_databases(old_config, **kwargs)

    def teardown_test_environment(self, **kwargs):
        if getattr(self, "pgbouncer", None):
            self.pgbouncer.stop()
        self.cache_override.disable()
        super().teardown_test_environment(**kwargs)
