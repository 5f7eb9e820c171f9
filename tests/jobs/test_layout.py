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
