"""Django's test runner, plus a RabbitMQ virtual host of the tests' own.

Tests get `test_<name>` as their database; here they also get `test_<vhost>` as their broker
virtual host, so a worker of a running `make run` never takes the tests' jobs (nor the tests' worker
a real job). Worker subprocesses inherit it through CELERY_BROKER_URL.
"""
import os
import shutil
import subprocess
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.test.runner import DiscoverRunner

from site_config import celery_app


def test_broker_url(url: str) -> tuple[str, str, str]:
    """The test URL for broker `url`, with its vhost and user."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    test_vhost = "test" if vhost == "/" else f"test_{vhost}"
    return urlunsplit(parts._replace(path=f"/{test_vhost}")), test_vhost, unquote(parts.username or "guest")


def recreate_vhost(vhost: str, user: str) -> None:
    """Give the tests an empty `vhost`, as Django gives them an empty database: no message or queue
    of an earlier run is left. Needs rabbitmqctl, so a local broker; on a remote one the vhost
    must exist already (connecting says so if not)."""
    if shutil.which("rabbitmqctl") is None:
        return
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)  # may not exist
    for command in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        rabbitmqctl(*command)


def rabbitmqctl(*arguments: str, tries: int = 5) -> None:
    """Run rabbitmqctl, again after a pause if the node cannot be reached for a moment (as while
    other nodes on this machine, such as the cluster tests', start or stop)."""
    for attempt in range(1, tries + 1):
        result = subprocess.run(["rabbitmqctl", "-q", *arguments], capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return
        if attempt == tries:
            raise RuntimeError(f"rabbitmqctl {' '.join(arguments)} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        time.sleep(2)


class TestRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        # A Redis database of the tests' own for the cache (launch counters), emptied each run.
        test_cache = {**settings.CACHES["default"], "LOCATION": settings.REDIS_URL.rsplit("/", 1)[0] + "/15"}
        self.cache_override = override_settings(CACHES={"default": test_cache})
        self.cache_override.enable()
        cache.clear()
        url, vhost, user = test_broker_url(celery_app.conf.broker_url)
        recreate_vhost(vhost, user)
        celery_app.conf.broker_url = os.environ["CELERY_BROKER_URL"] = url

    def teardown_test_environment(self, **kwargs):
        self.cache_override.disable()
        super().teardown_test_environment(**kwargs)
