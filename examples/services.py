"""The example jobs' one write."""
from django.db import connection
from django.utils import timezone

from .models import Probe


def probe_record(*, key: str) -> None:
    """Record `key` once, counting the runs: the effect of running twice is the effect of once."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Probe._meta.db_table} (key, runs, first_at, last_at) VALUES (%s, 1, %s, %s) "
            f"ON CONFLICT (key) DO UPDATE SET runs = {Probe._meta.db_table}.runs + 1, last_at = EXCLUDED.last_at",
            [key, now, now],
        )
