"""A database of a benchmark's own, created and dropped like the test database."""
from contextlib import contextmanager

from django.db import connection


@contextmanager
def throwaway_database(suffix: str):
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_{suffix}"
    original_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)
