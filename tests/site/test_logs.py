"""What the web process writes to its logs: no secret a request carried."""
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.request

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase

from accounts.emails import activation_link
from jobs.testing.databases import database_url
from jobs.testing.processes import free_port, procfile_web, wait_for


class AccessLogTests(TransactionTestCase):
    def test_an_activation_token_is_not_written_to_the_access_log(self):
        """The link works, and neither its request line nor the Referer of the next page puts the
        token in the log gunicorn writes, run as the Procfile runs it."""
        user = User.objects.create_user("ada@example.org", email="ada@example.org", is_active=False)
        path = activation_link(user).split("://", 1)[1].split("/", 1)[1]
        token = path.rstrip("/").rsplit("/", 1)[1]
        port = free_port()
        environment = {**os.environ, "DATABASE_URL": database_url(),
                       "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
        with tempfile.TemporaryFile("w+") as log:
            server = subprocess.Popen(shlex.split(procfile_web(f"127.0.0.1:{port}")), cwd=settings.BASE_DIR,
                                      env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_for(lambda: _get(f"http://127.0.0.1:{port}/accounts/login/") is not None, timeout=30, interval=0.2,
                         message="the web server")
                _get(f"http://127.0.0.1:{port}/{path}")
                _get(f"http://127.0.0.1:{port}/accounts/login/", referer=f"http://127.0.0.1:{port}/{path}")
            finally:
                server.terminate()
                server.wait(timeout=30)
            log.seek(0)
            written = log.read()
        user.refresh_from_db()
        self.assertTrue(user.is_active, written)
        self.assertIn("/accounts/activate/[redacted]/", written)
        self.assertNotIn(token.split(":")[-1], written)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, referer: str | None = None) -> int | None:
    """The status of a GET of `url` (redirects not followed), or None if nothing answers."""
    request = urllib.request.Request(url, headers={"Referer": referer} if referer else {})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
