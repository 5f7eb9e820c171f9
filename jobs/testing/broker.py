"""RabbitMQ virtual hosts of their own, for the tests and the benchmarks: as Django gives tests an
empty database, these give them an empty broker, so a worker of a running `make run` never takes
their jobs (nor theirs a real job)."""
import os
import shutil
import subprocess
import time
from contextlib import contextmanager, suppress
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


def connections_close(pid: int, port: int = 5672) -> int:
    """Have RabbitMQ close every connection process `pid` of this machine holds to it (on `port`), as a
    network fault or a broker node's crash would end them while the process runs on; how many."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with suppress(OSError):
            if (target := os.readlink(f"/proc/{pid}/fd/{fd}")).startswith("socket:["):
                sockets.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, remote, inode = (fields := line.split())[1], fields[2], fields[9]
                if inode in sockets and int(remote.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    listed = subprocess.run(["rabbitmqctl", "-q", "--no-table-headers", "list_connections", "pid", "peer_port"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    closing = [connection for connection, peer_port in (line.split("\t") for line in listed.splitlines() if "\t" in line)
               if int(peer_port) in ports]
    for connection in closing:
        rabbitmqctl("close_connection", connection, "closed by a test")
    return len(closing)
