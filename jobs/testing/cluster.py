"""A RabbitMQ cluster of three nodes beside the machine's own broker, for tests and benchmarks.

Each node has its own name, ports and data directory (a temporary folder owned by the rabbitmq
user), no plugins, and the machine's Erlang cookie; the second and third join the first. The
machine's own node on 5672 is not touched.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def rabbitmqctl(node: str, *arguments: str, timeout: float = 120) -> str:
    return subprocess.run(["rabbitmqctl", "-q", "-n", node, *arguments], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


class RabbitCluster:
    def __init__(self, size: int = 3, first_port: int = 5701):
        self.ports = [first_port + n for n in range(size)]
        self.nodes = [f"jobs-cluster-{n + 1}@localhost" for n in range(size)]
        self.directory = Path(tempfile.mkdtemp(prefix="rabbit-cluster-"))

    @property
    def url(self) -> str:
        """Every node in one broker URL: Celery and kombu fail over between them."""
        return ";".join(f"amqp://guest:guest@127.0.0.1:{port}//" for port in self.ports)

    def start(self) -> "RabbitCluster":
        for node, port in zip(self.nodes, self.ports, strict=True):
            self._start_node(node, port)
        for node in self.nodes[1:]:
            rabbitmqctl(node, "stop_app")
            rabbitmqctl(node, "join_cluster", self.nodes[0])
            rabbitmqctl(node, "start_app")
        rabbitmqctl(self.nodes[0], "await_online_nodes", str(len(self.nodes)))
        return self

    def _start_node(self, node: str, port: int) -> None:
        home = self.directory / node.split("@")[0]
        home.mkdir(parents=True, exist_ok=True)  # a node started again after a crash keeps its data
        (home / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n")
        (home / "enabled_plugins").write_text("[].\n")
        shutil.chown(self.directory, "rabbitmq", "rabbitmq")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(home)], check=True)
        environment = {
            "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(port + 20000),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"), "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "pid"),
        }
        exports = " ".join(f"{name}={value}" for name, value in environment.items())
        subprocess.run(["su", "rabbitmq", "-s", "/bin/sh", "-c", f"{exports} rabbitmq-server -detached"],
                       check=True, timeout=60)
        deadline = time.monotonic() + 120
        while True:  # the Erlang VM takes a moment before rabbitmqctl can reach it
            try:
                rabbitmqctl(node, "await_startup", timeout=120)
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop_node(self, index: int) -> None:
        """Stop one node's RabbitMQ application (its Erlang VM stays, as after a crash of the app)."""
        rabbitmqctl(self.nodes[index], "stop_app")

    def start_node(self, index: int) -> None:
        rabbitmqctl(self.nodes[index], "start_app")

    def kill_node(self, index: int) -> None:
        """Crash one node: SIGKILL its Erlang VM, as a machine's crash or the OOM killer would. Its
        connections drop at once, without a word to the clients."""
        pid = int(rabbitmqctl(self.nodes[index], "eval", "os:getpid().").strip().strip('"'))
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.nodes[index]} (pid {pid}) still runs after SIGKILL")
            time.sleep(0.05)

    def restart_node(self, index: int) -> None:
        """Start a crashed node's Erlang VM again, with its data: it rejoins the cluster."""
        self._start_node(self.nodes[index], self.ports[index])

    def leader(self, queue: str) -> int:
        """Which node leads a quorum queue (its index in `nodes`)."""
        for node in self.nodes:
            try:
                rows = json.loads(rabbitmqctl(node, "list_queues", "name", "leader", "--formatter", "json"))
            except subprocess.CalledProcessError:
                continue  # that node is stopped
            for row in rows:
                if row["name"] == queue:
                    return self.nodes.index(row["leader"])
        raise LookupError(f"No node knows a queue named {queue!r}.")

    def close(self) -> None:
        for node in self.nodes:
            subprocess.run(["rabbitmqctl", "-q", "-n", node, "stop"], capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-f", "jobs-cluster-"]).returncode == 0:
            time.sleep(0.5)
        shutil.rmtree(self.directory, ignore_errors=True)
