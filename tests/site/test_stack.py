"""docker-compose.yml cannot run here (no Docker engine), so its promises are checked as data."""
import os
from pathlib import Path

import yaml
from django.conf import settings
from django.test import SimpleTestCase

ROOT = Path(settings.BASE_DIR)
APP_SERVICES = {"web", "worker", "worker-email", "worker-long", "worker-demo", "beat"}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def as_in_a_container(command: str) -> str:
    """A Procfile command as Compose runs it: on every interface of its container, port 8000, and
    restarted by Compose (restart: unless-stopped) rather than by bin/respawn."""
    return command.replace("${WEB_HOST:-127.0.0.1}:$PORT", "0.0.0.0:8000").removeprefix("bin/respawn ")


def default_broker_url(services) -> str:
    """The app's broker URL when CELERY_BROKER_URL is not exported: the compose file's own node."""
    value = services["worker"]["environment"]["CELERY_BROKER_URL"]
    return value.removeprefix("${CELERY_BROKER_URL:-").removesuffix("}")


class ComposeTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def test_names_the_whole_stack(self):
        stack = {name for name, service in self.services.items() if not service.get("profiles")}
        self.assertEqual(stack, {"postgres", "rabbitmq", "redis", "migrate", *APP_SERVICES})

    def test_flower_is_optional_and_runs_as_make_flower_does(self):
        flower = self.services["flower"]
        self.assertEqual(flower["profiles"], ["flower"])
        self.assertIn(flower["command"], (ROOT / "Makefile").read_text())

    def test_the_cluster_profile_runs_three_nodes_and_the_app_can_switch_to_it(self):
        nodes = {name: service for name, service in self.services.items() if "cluster" in service.get("profiles", ())}
        self.assertEqual(set(nodes), {"rabbit1", "rabbit2", "rabbit3"})
        self.assertEqual({service["hostname"] for service in nodes.values()}, set(nodes))
        config = (ROOT / "docker" / "rabbitmq-cluster.conf").read_text()
        for name in nodes:
            self.assertIn(f"rabbit@{name}", config)
            self.assertIn("./docker/rabbitmq-cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro",
                          nodes[name]["volumes"])
        self.assertEqual([name for name in nodes if nodes[name].get("ports")], ["rabbit1"])  # one management UI
        environment = self.services["worker"]["environment"]
        self.assertTrue(environment["CELERY_BROKER_URL"].startswith("${CELERY_BROKER_URL:-amqp://"))
        self.assertEqual(environment["BROKER_QUEUE_TYPE"], "${BROKER_QUEUE_TYPE:-classic}")

    def test_app_processes_run_the_same_commands_as_make_run(self):
        local = procfile()
        self.assertEqual(set(local), APP_SERVICES)
        for name in APP_SERVICES:
            with self.subTest(service=name):
                self.assertEqual(self.services[name]["command"], as_in_a_container(local[name]))

    def test_one_image_for_every_app_process(self):
        images = {self.services[name]["image"] for name in APP_SERVICES | {"migrate"}}
        self.assertEqual(images, {"jobs-app"})
        self.assertTrue(all(self.services[name]["build"] == "." for name in APP_SERVICES))

    def test_app_waits_for_healthy_services_and_applied_migrations(self):
        for name in ("postgres", "rabbitmq", "redis", "web"):
            self.assertIn("healthcheck", self.services[name], name)
        self.assertEqual(self.services["migrate"]["command"], "python manage.py migrate --noinput")
        self.assertEqual(self.services["migrate"]["depends_on"]["postgres"]["condition"], "service_healthy")
        for name in APP_SERVICES:
            depends_on = self.services[name]["depends_on"]
            self.assertEqual(depends_on["migrate"]["condition"], "service_completed_successfully")
            self.assertEqual(depends_on["rabbitmq"]["condition"], "service_healthy")

    def test_a_worker_for_each_queue_and_the_long_one_bounded(self):
        from django.conf import settings

        queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
        consumed = {}
        for name, command in procfile().items():
            if " worker " in f" {command} ":
                consumed[name] = command.split("--queues ")[1].split()[0]
        self.assertEqual(set(consumed.values()), queues)
        long = procfile()["worker-long"]
        self.assertIn("--concurrency 2 --prefetch-multiplier 1", long)  # an import's chunks side by side
        time_limit = int(long.split("--time-limit ")[1].split()[0])
        rabbitmq_consumer_timeout = 30 * 60
        self.assertLess(time_limit, rabbitmq_consumer_timeout)

    def test_rabbitmq_is_the_broker_with_its_management_ui(self):
        self.assertIn("management", self.services["rabbitmq"]["image"])
        self.assertIn("15672:15672", self.services["rabbitmq"]["ports"])
        self.assertTrue(default_broker_url(self.services).startswith("amqp://"))

    def test_beat_uses_the_database_scheduler(self):
        self.assertIn("celery -A site_config beat", self.services["beat"]["command"])

    def test_nothing_starts_without_its_secrets_and_rabbitmq_has_its_own_user_and_vhost(self):
        self.assertIn(":?", self.services["flower"]["environment"]["FLOWER_BASIC_AUTH"])
        self.assertIn(":?", self.services["web"]["environment"]["DJANGO_SECRET_KEY"])
        self.assertIn(":?", self.services["postgres"]["environment"]["POSTGRES_PASSWORD"])
        rabbitmq = self.services["rabbitmq"]["environment"]
        self.assertIn(":?", rabbitmq["RABBITMQ_DEFAULT_PASS"])
        self.assertNotEqual(rabbitmq["RABBITMQ_DEFAULT_USER"], "guest")
        self.assertEqual(rabbitmq["RABBITMQ_DEFAULT_VHOST"], "jobs")
        self.assertTrue(default_broker_url(self.services).endswith("@rabbitmq:5672/jobs"))


class EnvironmentDocumentationTests(SimpleTestCase):
    def test_every_variable_settings_read_is_in_env_example(self):
        """And in the settings reference (tests/site/test_docs.py)."""
        import re

        read = set(re.findall(r'env\.\w+\("([A-Z_]+)"', (ROOT / "site_config" / "settings.py").read_text()))
        example = (ROOT / ".env.example").read_text()
        self.assertTrue(read)
        for name in read | {"FLOWER_BASIC_AUTH"}:
            with self.subTest(variable=name):
                self.assertIn(f"{name}=", example)


class RunUsesTheEnvironmentTests(SimpleTestCase):
    def test_make_runs_processes_with_the_exported_environment_over_dot_env(self):
        """`DATABASE_URL=… make run` runs every process on that database, not on .env's."""
        import re
        import subprocess
        import sys
        import tempfile

        makefile = (ROOT / "Makefile").read_text()
        options = re.search(r"honcho start(.*)", makefile).group(1).replace("$(PORT)", "8000").split()
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / ".env").write_text("DATABASE_URL=postgres://postgres@127.0.0.1:5432/from_dot_env\n")
            procfile_path = Path(directory) / "Procfile"
            procfile_path.write_text(
                "probe: python -c \"import os; print('DATABASE_URL=' + os.environ.get('DATABASE_URL', ''))\"\n"
            )
            result = subprocess.run(
                [sys.executable, "-m", "honcho", "start", *options, "-f", str(procfile_path), "-d", directory],
                env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                     "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/from_shell"},
                capture_output=True, text=True, timeout=60,
            )
        self.assertIn("DATABASE_URL=postgres://postgres@127.0.0.1:5432/from_shell", result.stdout, result.stderr)


class RunSurvivesACrashedWorkerTests(SimpleTestCase):
    def test_a_worker_killed_under_make_run_starts_again_and_the_web_stays_on_its_port(self):
        """honcho, as `make run` starts it, with the real bin/respawn: SIGKILL a worker, and it comes
        back while the web process keeps answering on the port it was given."""
        import re
        import signal
        import subprocess
        import sys
        import tempfile
        import time
        import urllib.request

        from jobs.testing.processes import free_port, wait_for

        port = free_port()
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / "Procfile").write_text(
                "web: python -m http.server $PORT --bind 127.0.0.1\n"
                f"worker: {ROOT}/bin/respawn python -c \"import os, time; print('worker pid', os.getpid(), flush=True); "
                "time.sleep(600)\"\n")
            log = Path(directory) / "log"
            with open(log, "w") as output:
                honcho = subprocess.Popen(
                    [sys.executable, "-m", "honcho", "start", "--env", "/dev/null", "--port", str(port), "-d", directory,
                     "-f", str(Path(directory) / "Procfile")], stdout=output, stderr=subprocess.STDOUT,
                    env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                         "PYTHONUNBUFFERED": "1"}, start_new_session=True)
            try:
                def pids():
                    return re.findall(r"worker pid (\d+)", log.read_text())

                first = wait_for(lambda: pids(), timeout=20, message="the worker")[0]
                os.kill(int(first), signal.SIGKILL)
                wait_for(lambda: len(pids()) == 2, timeout=20, message=f"the worker to start again:\n{log.read_text()}")
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    self.assertEqual(response.status, 200)
                self.assertIsNone(honcho.poll(), log.read_text())
            finally:
                os.killpg(honcho.pid, signal.SIGINT)
                honcho.wait(timeout=20)
                time.sleep(0.5)
            self.assertNotIn("worker pid", subprocess.run(["pgrep", "-af", "worker pid"], capture_output=True,
                                                           text=True).stdout)
