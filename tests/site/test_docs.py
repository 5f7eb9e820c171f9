"""The documentation tells the truth: its Python examples run and print what their comments say, its
`curl -X POST` examples answer the status they show, what it names (files, commands, make targets,
screenshots, settings) exists, and the generated reference pages are what the code writes."""
import contextlib
import io
import json
import re
import shlex
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command, get_commands
from django.test import TestCase

from accounts.services import api_token_create
from tests.site.test_page_walk import SCREENSHOTS

ROOT = Path(settings.BASE_DIR)
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
PYTHON = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
SHELL = re.compile(r"^ *```(?:sh|bash|console)\n(.*?)^ *```", re.S | re.M)
PRINTED = re.compile(r"^\s*print\(.*\)\s*#\s*(.+)$")
NAMED_FILE = re.compile(r"`((?:\.ci|accounts|benchmarks|bin|contacts|docker|docs|examples|jobs|reports|site_config|tests)"
                        r"/[\w./-]+|Makefile|Procfile|Dockerfile|docker-compose\.yml|mkdocs\.yml|\.env\.example)`")
COMMAND = re.compile(r"manage\.py (\w+)")
MAKE = re.compile(r"`make ([\w-]+)")


def text(page: Path) -> str:
    return page.read_text()


def blocks(page: Path) -> list[str]:
    """A page's Python blocks, unindented (a block inside a list item is indented with it)."""
    return [re.sub(rf"^{indent}", "", code, flags=re.M) for indent, code in PYTHON.findall(text(page))]


def matches(expected: str, printed: str) -> bool:
    """`…` in a comment stands for any text (an id, a time)."""
    return re.fullmatch(".*".join(re.escape(part) for part in expected.split("…")), printed) is not None


class PythonExampleTests(TestCase):
    def test_every_python_example_runs_and_prints_what_its_comments_say(self):
        ran = 0
        for page in PAGES:
            namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}  # a page's blocks share one
            for code in blocks(page):
                expected = [found.group(1).strip() for line in code.splitlines() if (found := PRINTED.match(line))]
                output = io.StringIO()
                with self.subTest(page=str(page.relative_to(ROOT)), block=code.splitlines()[0]):
                    with contextlib.redirect_stdout(output), self.captureOnCommitCallbacks():
                        exec(compile(code, str(page), "exec"), namespace)  # noqa: S102 - the docs' own examples
                    printed = output.getvalue().splitlines()
                    self.assertEqual(len(printed), len(expected), printed)
                    for want, got in zip(expected, printed, strict=True):
                        self.assertTrue(matches(want, got), f"printed {got!r}, the page says {want!r}")
                ran += 1
        self.assertGreaterEqual(ran, 10)

    def test_the_wildcard_matches_only_what_it_should(self):
        self.assertTrue(matches("… PENDING", "0193-ab PENDING"))
        self.assertFalse(matches("… PENDING", "0193-ab SUCCESS"))


class CurlExampleTests(TestCase):
    def test_every_curl_post_answers_the_status_it_shows(self):
        user = User.objects.create_user("docs", password="a-long-password")
        _, token = api_token_create(user=user, name="docs")
        tried = 0
        for page in PAGES:
            for shell in SHELL.findall(text(page)):
                for example in re.finditer(r"(curl [^\n]*-X POST.*?)\n\s*# (\d{3}) ", shell, re.S):
                    words = shlex.split(example.group(1).replace("\\\n", " "))
                    path = next(word for word in words if word.startswith("localhost:8000")).removeprefix("localhost:8000")
                    body = words[words.index("-d") + 1]
                    response = self.client.post(path, json.loads(body), content_type="application/json",
                                                headers={"authorization": f"Bearer {token}"})
                    self.assertEqual(response.status_code, int(example.group(2)), f"{page.name}: {example.group(1)}")
                    tried += 1
        self.assertGreaterEqual(tried, 3)


class NamedThingsTests(TestCase):
    def test_every_file_command_make_target_and_screenshot_named_exists(self):
        commands = get_commands()
        makefile = text(ROOT / "Makefile")
        for page in PAGES:
            content = text(page)
            with self.subTest(page=page.name):
                for name in NAMED_FILE.findall(content):
                    self.assertTrue((ROOT / name.rstrip("/")).exists(), f"{page.name} names {name}, which is not there")
                for command in COMMAND.findall(content):
                    self.assertIn(command, commands, f"{page.name} names manage.py {command}")
                for target in MAKE.findall(content):
                    self.assertRegex(makefile, rf"(?m)^{re.escape(target)}:", f"{page.name} names make {target}")
                for shot in re.findall(r"screenshots/([\w-]+)\.png", content):
                    self.assertIn(shot, SCREENSHOTS, f"{page.name} shows {shot}.png, which no browser test takes")

    def test_every_setting_read_from_the_environment_is_in_the_settings_reference(self):
        reference = text(ROOT / "docs/reference/settings.md")
        read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z_]+)\"", text(ROOT / "site_config/settings.py")))
        example = set(re.findall(r"(?m)^([A-Z_]+)=", text(ROOT / ".env.example")))
        self.assertGreater(len(read), 20)
        for name in sorted(read | example):
            self.assertIn(f"`{name}`", reference, f"{name} is read by the settings but not in docs/reference/settings.md")

    def test_the_generated_reference_pages_are_what_the_code_writes(self):
        call_command("docs_reference", "--check", stdout=io.StringIO())
