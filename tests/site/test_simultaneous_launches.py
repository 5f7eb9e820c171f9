"""Launches that arrive at the same moment, on the web server as the Procfile runs it, from people
holding API tokens: each counted against the launcher's limits."""
import http.client
import json
import threading
from collections import Counter

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.test import TransactionTestCase

from accounts.services import api_token_create
from jobs.models import JobRecord
from jobs.testing.processes import WebServer


class SimultaneousLaunchTests(TransactionTestCase):
    """Launches that arrive at once, on the web server as the Procfile runs it (two processes of
    four threads), each counted against the launcher's limits."""

    def serve(self, **environment) -> tuple[WebServer, str, User]:
        """The web server with `environment`, a person and their token."""
        user = User.objects.create_user("mallory")
        _, key = api_token_create(user=user, name="flood")
        server = WebServer({**environment, "REDIS_URL": settings.CACHES["default"]["LOCATION"]}).start()
        self.addCleanup(server.stop)
        self.addCleanup(current_app.control.purge)  # no worker runs here: leave nothing for the next test's
        return server, key, user

    def launch_at_once(self, server: WebServer, key: str, launches: int) -> Counter:
        """`launches` launches with token `key`, each on its own connection, sent at the same moment:
        how many got each status."""
        connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60) for _ in range(launches)]
        ready, answers = threading.Barrier(launches), Counter()

        def launch(connection):
            connection.connect()
            ready.wait()
            connection.request("POST", "/api/jobs/", body=json.dumps({"task": "testapp.add", "args": [1, 2]}),
                               headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            answers[response.status] += 1

        threads = [threading.Thread(target=launch, args=(connection,)) for connection in connections]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def test_launches_at_the_same_moment_are_each_counted_against_the_rate(self):
        """django-ninja's throttle read the count and wrote it back: 60 launches at once against 20/m
        let 24 or 25 through."""
        server, key, user = self.serve(JOBS_LAUNCH_RATE="10/m")
        self.assertEqual(self.launch_at_once(server, key, 40), {202: 10, 429: 30})
        self.assertEqual(JobRecord.objects.filter(launched_by=user).count(), 10)

    def test_launches_at_the_same_moment_never_pass_the_unfinished_cap(self):
        """Against JOBS_MAX_UNFINISHED, none of the jobs finishing: the first round's launches find no
        headroom known and count; in the second, some take what is left while the others, finding
        too little, count again."""
        server, key, user = self.serve(JOBS_LAUNCH_RATE="1000/m", JOBS_MAX_UNFINISHED="15")
        self.assertEqual(self.launch_at_once(server, key, 10), {202: 10})
        self.assertEqual(self.launch_at_once(server, key, 40), {202: 5, 429: 35})
        self.assertEqual(JobRecord.objects.filter(launched_by=user).count(), 15)
