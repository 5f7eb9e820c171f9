"""The tests' settings behind a PgBouncer in transaction pooling mode, which the test runner
starts on PGBOUNCER_PORT (jobs/testing/pgbouncer.py): `python manage.py test --tag integration
--exclude-tag cluster --settings tests.settings_pgbouncer` (run by .ci/run). The site and its
workers connect to PgBouncer as a production site behind one does, with the settings it needs
(DATABASE_TRANSACTION_POOLING)."""
from tests.settings import *  # noqa: F403

PGBOUNCER_PORT = 6439
# DISABLE_SERVER_SIDE_CURSORS: what DATABASE_TRANSACTION_POOLING=true sets.
DATABASES["default"].update(HOST="127.0.0.1", PORT=PGBOUNCER_PORT, DISABLE_SERVER_SIDE_CURSORS=True)  # noqa: F405
