"""The engine is a reusable app: it imports neither the project package nor any app built on it."""
import ast
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase

import jobs

OUTSIDE_THE_ENGINE = {"site_config", "accounts", "contacts", "reports", "examples", "tests"}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports only; relative ones stay inside)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
    return packages


class EngineBoundaryTests(SimpleTestCase):
    def test_no_engine_module_imports_the_project_or_an_app_built_on_it(self):
        engine = Path(jobs.__file__).parent
        for path in sorted(engine.rglob("*.py")):
            with self.subTest(module=str(path.relative_to(settings.BASE_DIR))):
                self.assertEqual(imported_packages(path) & OUTSIDE_THE_ENGINE, set())

    def test_the_check_sees_a_forbidden_import(self):
        """The check above would notice one (it is not vacuous)."""
        project_api = Path(settings.BASE_DIR) / "site_config" / "api.py"
        self.assertLessEqual({"jobs", "accounts", "contacts"}, imported_packages(project_api))


ENGINE = Path(jobs.__file__).parent
# The engine's places: a module at its top (catalog.py) or a capability's folder (workflows/).
MAINTENANCE = {"migrations", "management", "testing"}  # above everything by nature, and not imported by it


def place_of(module: str) -> str:
    """'jobs.workflows.services' -> 'workflows'; 'jobs.catalog' -> 'catalog'."""
    return module.split(".")[1] if module.count(".") else ""


def engine_imports(path: Path) -> set[str]:
    """The engine modules `path` imports, anywhere in it (in a function too: a circle is a circle)."""
    module = ".".join(path.relative_to(ENGINE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "jobs" or target.startswith("jobs."):
                # `from . import services` names modules; `from .catalog import job` a module's names
                names = [f"{target}.{alias.name}" for alias in node.names]
                found.update(name if (ENGINE.parent / name.replace(".", "/")).with_suffix(".py").exists()
                             or (ENGINE.parent / name.replace(".", "/")).is_dir() else target for name in names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("jobs."))
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle's nodes found by a depth-first walk (empty when the graph has none)."""
    found, state = [], {}

    def walk(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


class EngineLayoutTests(SimpleTestCase):
    """The engine is arranged by capability: each place imports only places below it."""

    def graphs(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        modules, places = {}, {}
        for path in ENGINE.rglob("*.py"):
            module = ".".join(path.relative_to(ENGINE.parent).with_suffix("").parts).removesuffix(".__init__")
            if place_of(module) in MAINTENANCE:
                continue
            imported = engine_imports(path) - {module}
            modules[module] = imported
            places.setdefault(place_of(module), set()).update(
                place_of(target) for target in imported if place_of(target) != place_of(module))
        places.pop("", None)
        return modules, places

    def test_no_module_and_no_capability_imports_in_a_circle(self):
        modules, places = self.graphs()
        self.assertEqual(circles(modules), [])
        self.assertEqual(circles(places), [])

    def test_the_circle_check_sees_a_circle(self):
        self.assertEqual(circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c", "a"]])
        self.assertEqual(circles({"a": {"b"}, "b": set()}), [])

    def test_the_shared_basics_import_nothing_above_them(self):
        _, places = self.graphs()
        self.assertEqual(places["exceptions"], set())
        self.assertEqual(places["cache"], set())  # Lua scripts on the cache's Redis, for the launch counts
        self.assertLessEqual(places["catalog"], {"exceptions"})
        # Sending a job goes through its limit (a limited job waits instead of being published): limits is
        # beneath the records, on the catalog alone.
        self.assertLessEqual(places["limits"], {"catalog", "exceptions", "results"})
        self.assertLessEqual(places["records"], {"cache", "catalog", "exceptions", "limits", "results"})
        # and the capabilities build on them
        self.assertIn("records", places["workflows"])

    def test_no_module_is_over_400_lines_without_its_reason_at_the_top(self):
        for path in sorted(ENGINE.rglob("*.py")):
            if MAINTENANCE & set(path.relative_to(ENGINE).parts):
                continue
            text = path.read_text()
            with self.subTest(module=str(path.relative_to(ENGINE))):
                if text.count("\n") > 400:
                    self.assertIn("Over 400 lines because", ast.get_docstring(ast.parse(text)) or "")


class DeprecatedNamesTests(SimpleTestCase):
    """The names the engine's flat modules had keep working for a release, saying where they went."""

    def test_an_old_name_warns_and_is_the_new_one(self):
        import jobs.selectors
        import jobs.services
        from jobs.launching.services import job_launch
        from jobs.queues.selectors import paused_queues

        with self.assertWarnsMessage(DeprecationWarning, "jobs.services.job_launch moved to jobs.launching.services"):
            self.assertIs(jobs.services.job_launch, job_launch)
        with self.assertWarnsMessage(DeprecationWarning, "moved to jobs.queues.selectors.paused_queues"):
            self.assertIs(jobs.selectors.paused_queues, paused_queues)

    def test_a_name_that_never_was_is_an_attribute_error(self):
        import jobs.services

        with self.assertRaisesMessage(AttributeError, "has no attribute 'job_lunch'"):
            jobs.services.job_lunch  # noqa: B018

    def test_the_public_paths_the_settings_name_still_load(self):
        from celery.utils.imports import symbol_by_name

        from jobs.results.backend import DatabaseBackend
        from jobs.workflows.declare import workflow

        self.assertIs(symbol_by_name("jobs.results:DatabaseBackend"), DatabaseBackend)
        self.assertTrue(symbol_by_name("jobs.scheduling.beat:SingleBeatScheduler"))
        self.assertTrue(callable(symbol_by_name("jobs.results.fixups:install_django_fixup")))
        from jobs.workflows import chain
        from jobs.workflows import workflow as public_workflow

        self.assertIs(public_workflow, workflow)
        self.assertEqual(chain({"job": "a"}), {"chain": [{"job": "a"}]})
