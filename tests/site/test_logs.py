"""What the web process writes to its logs: no secret a request carried."""
import urllib.request

from django.contrib.auth.models import User
from django.test import TransactionTestCase

from accounts.emails import activation_link
from jobs.testing.processes import WebServer


class AccessLogTests(TransactionTestCase):
    def test_an_activation_token_is_not_written_to_the_access_log(self):
        """The link works, and neither its request line nor the Referer of the next page puts the
        token in the log gunicorn writes, run as the Procfile runs it."""
        user = User.objects.create_user("ada@example.org", email="ada@example.org", is_active=False)
        path = activation_link(user).split("://", 1)[1].split("/", 1)[1]
        token = path.rstrip("/").rsplit("/", 1)[1]
        server = WebServer().start()
        try:
            _get(f"http://127.0.0.1:{server.port}/{path}")
            _get(f"http://127.0.0.1:{server.port}/accounts/login/", referer=f"http://127.0.0.1:{server.port}/{path}")
        finally:
            server.stop()
        written = server.output()
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
