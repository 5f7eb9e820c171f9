"""Real Celery processes and web servers, on the real broker and this process's database: for
integration tests and benchmarks."""
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from celery import current_app
from django.conf import settings

from .databases import database_url


def free_port() -> int:
    """A TCP port nothing on this machine listens on now, for a server a test or benchmark starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile_web(bind: str) -> str:
    """The Procfile's web command (what `make run` and compose run), listening on `bind` (host:port)."""
    line = next(line for line in (settings.BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.removeprefix("web:").strip().replace("${WEB_HOST:-127.0.0.1}:$PORT", bind)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


class ProjectProcess:
    """A process of the project (argv()) in a subprocess, using this process's database."""

    def __init__(self, environment: dict[str, str] | None = None):
        # Kept open for the process's life, and left on disk to read after a failure.
        prefix = f"{type(self).__name__.lower()}-"
        self.log = tempfile.NamedTemporaryFile("w+", prefix=prefix, suffix=".log", delete=False)  # noqa: SIM115
        self.process = None
        self.environment = environment or {}

    def argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def what(self) -> str:
        """What it is, for messages."""
        raise NotImplementedError

    def start(self):
        environment = {**os.environ, "DATABASE_URL": database_url(), **self.environment}
        self.process = subprocess.Popen(
            self.argv(), cwd=settings.BASE_DIR, env=environment, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a crash can take all of it
        )
        try:
            wait_for(self._ready, timeout=60, interval=0.2, message=f"{self.what} to start")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"{self.what} exited with {self.process.returncode}:\n{self.output()}")
        return self.ready()

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self):
        """Warm shutdown (SIGTERM): running tasks finish, connections close."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def freeze(self):
        """SIGSTOP: the process stalls (a long GC pause, a stopped VM) without dying."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self):
        """SIGCONT: a frozen process goes on where it stopped."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)

    def kill(self):
        """SIGKILL to the process and its children: the machine is gone, as in a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name) as log:
            return log.read()


class CeleryProcess(ProjectProcess):
    """`celery -A <the project's app> <command>`."""

    command: list[str]

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", current_app.main, *self.command]

    @property
    def what(self) -> str:
        return f"celery {self.command[0]}"


class WebServer(ProjectProcess):
    """The Procfile's web server (or `command`, with {port} for its port) on a free port of loopback,
    its commands from this virtualenv, as under `make run`."""

    def __init__(self, environment: dict[str, str] | None = None, command: str | None = None):
        path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
        super().__init__({"PATH": path, **(environment or {})})
        self.port = free_port()
        self.command = command or procfile_web("127.0.0.1:{port}")

    def argv(self) -> list[str]:
        return shlex.split(self.command.format(port=self.port))

    what = "the web server"

    def ready(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/accounts/login/")
            connection.getresponse().read()
        except OSError:
            return False
        finally:
            connection.close()
        return True


class Worker(CeleryProcess):
    def __init__(self, concurrency: int = 2, queues: str = "default", environment: dict[str, str] | None = None,
                 pool: str = "prefork"):
        super().__init__(environment)
        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.concurrency = concurrency
        self.command = [
            "worker", "--hostname", self.name, "--concurrency", str(concurrency), "--queues", queues,
            "--pool", pool, "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]

    def ready(self):
        # Its log says so once it consumes; a ping could not reach a worker on another broker.
        return f"{self.name} ready." in self.output()


class Beat(CeleryProcess):
    # No pidfile: several beats run side by side from one directory.
    command = ["beat", "--loglevel", "INFO", "--pidfile="]

    def ready(self):
        return "scheduling lock" in self.output()

    @property
    def active(self) -> bool:
        return self.output().rfind("took the scheduling lock") > self.output().rfind("standing by")


def dead_letter_count() -> int:
    """Messages waiting in the dead-letter queue of the tests' vhost."""
    with current_app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(settings.DEAD_LETTER_QUEUE, passive=True).message_count
