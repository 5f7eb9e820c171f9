"""gunicorn's access log without secrets: the web process runs with
`--logger-class site_config.gunicorn.AccessLogWithoutSecrets` (Procfile, compose, Dockerfile).

An activation link carries its token in the path, and a path is written to the access log twice:
in the request line and, on the page's next request, in the Referer. Access logs are read by more
people, and kept longer, than the token is meant to live (ACTIVATION_DAYS), so the token is
replaced in every field of a log line.
"""
import re

from gunicorn.glogging import Logger

# Paths whose last segment is a secret, and what stands in for it.
SECRET_IN_PATH = re.compile(r"(/accounts/activate/)[^/?#\s\"]+")
REDACTED = r"\1[redacted]"


class AccessLogWithoutSecrets(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: SECRET_IN_PATH.sub(REDACTED, value) if isinstance(value, str) else value
                for key, value in atoms.items()}
