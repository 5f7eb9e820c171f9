"""A PgBouncer of the tests' own in transaction pooling mode, in front of the machine's PostgreSQL,
as production sites run one (Debian's pgbouncer package). Its own port, configuration and files in
a temporary folder; run as the postgres user (PgBouncer refuses to run as root)."""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import wait_for


class PgBouncer:
    def __init__(self, port: int, server_host: str = "127.0.0.1", server_port: int = 5432):
        self.port, self.server_host, self.server_port = port, server_host, server_port
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))

    def start(self) -> "PgBouncer":
        (self.directory / "users.txt").write_text('"postgres" ""\n"root" ""\n')
        (self.directory / "pgbouncer.ini").write_text(f"""[databases]
* = host={self.server_host} port={self.server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
admin_users = postgres
auth_file = {self.directory}/users.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
server_reset_query =
# A server connection is checked (SELECT 1) before it is handed out: after a PostgreSQL restart no
# client is given a dead one.
server_check_delay = 0
# After PostgreSQL was unreachable (a restart), try logging in again after 1 s, not 15.
server_login_retry = 1
ignore_startup_parameters = extra_float_digits,options
logfile = {self.directory}/pgbouncer.log
pidfile = {self.directory}/pgbouncer.pid
""")
        shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(["pgbouncer", "-d", "-u", "postgres", str(self.directory / "pgbouncer.ini")], check=True,
                       capture_output=True, timeout=30)
        wait_for(self._listening, timeout=30, message=f"PgBouncer on port {self.port}")
        return self

    def _listening(self) -> bool:
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                               "-Atc", "SELECT 1"], capture_output=True, timeout=10).returncode == 0

    def disconnect(self, database: str) -> None:
        """Close every connection PgBouncer holds to `database` (so that it can be dropped)."""
        for command in (f"KILL {database}", f"RESUME {database}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "pgbouncer",
                            "-c", command], capture_output=True, timeout=30)

    def stop(self) -> None:
        pidfile = self.directory / "pgbouncer.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], capture_output=True)
            deadline = time.monotonic() + 10
            while pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.directory, ignore_errors=True)
