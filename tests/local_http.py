"""A local HTTP server standing in for a third party: never the internet."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ThirdParty(BaseHTTPRequestHandler):
    failures_left: dict[str, int] = {}  # per path: how many 503s before a 200

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path == "/slow":
            time.sleep(2)
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if self.path.startswith("/missing"):
            return self.answer(404, b"<title>Not here</title>")
        if self.path.startswith("/flaky"):
            left = self.failures_left.get(self.path, 2)
            if left:
                self.failures_left[self.path] = left - 1
                return self.answer(503, b"try later")
        self.answer(200, b"<html><head><title>Caf&eacute; prices</title></head><body>" + b"x" * 1000 + b"</body></html>")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(self.path)
        self.server.bodies.append(body)
        if self.path.startswith("/redirect?to="):
            self.send_response(307)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if self.path.startswith("/private"):  # as RabbitMQ's API answers: who you are, in the body
            return self.answer(401, f"not authorised: {self.headers.get('Authorization')}".encode())
        self.answer(200, b"ok")

    def answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client gave up waiting (the timeout test)

    def log_message(self, *args):
        pass


class LocalServer:
    """Serves ThirdParty on 127.0.0.1 in a thread; `url(path)` gives its address."""

    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), ThirdParty)
        self.server.requests = []  # the paths asked for, in order
        self.server.bodies = []  # the bodies POSTed, in order
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    @property
    def bodies(self) -> list[bytes]:
        return self.server.bodies

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"
