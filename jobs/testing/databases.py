"""Databases for benchmarks and test processes: a throwaway one, and the URL of the current one."""
from contextlib import contextmanager
from urllib.parse import quote

from django.db import connection


def database_url() -> str:
    """DATABASE_URL for the database this process uses now, to hand to worker subprocesses."""
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"


@contextmanager
def throwaway_database(suffix: str):
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_{suffix}"
    original_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)
