"""RabbitMQ virtual hosts of their own, for the tests and the benchmarks: as Django gives tests an
empty database, these give them an empty broker, so a worker of a running `make run` never takes
their jobs (nor theirs a real job)."""
import shutil
import subprocess
import time
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit, urlunsplit


def vhost_url(url: str, vhost: str) -> str:
    """Broker `url` with its virtual host replaced by `vhost`."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))


def url_vhost_and_user(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (unquote(parts.path[1:]) if len(parts.path) > 1 else "/"), unquote(parts.username or "guest")


def recreate_vhost(vhost: str, user: str) -> None:
    """An empty `vhost`: no message or queue of an earlier run is left. Needs rabbitmqctl, so a
    local broker; on a remote one the vhost must exist already (connecting says so if not)."""
    if shutil.which("rabbitmqctl") is None:
        return
    delete_vhost(vhost)
    for command in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        rabbitmqctl(*command)


def management_plugin_enable() -> None:
    """Enable RabbitMQ's management API on a local broker (the operations pages read it); a no-op
    when it is enabled already or the broker is not local."""
    if shutil.which("rabbitmq-plugins") is not None:
        subprocess.run(["rabbitmq-plugins", "--quiet", "enable", "rabbitmq_management"], capture_output=True, timeout=120)


def delete_vhost(vhost: str) -> None:
    if shutil.which("rabbitmqctl") is not None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)  # may not exist


@contextmanager
def throwaway_vhost(url: str, vhost: str):
    """A new empty `vhost` on the broker of `url` for the block; yields its URL, deletes it after."""
    recreate_vhost(vhost, url_vhost_and_user(url)[1])
    try:
        yield vhost_url(url, vhost)
    finally:
        delete_vhost(vhost)


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
