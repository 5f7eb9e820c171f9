"""Histograms of durations, as the job statistics keep them (JobStats): log-scale buckets, each a
quarter of a doubling wide (at most 19% apart), from 1 ms to three days, stored sparse as
{bucket: count}. Sums of them give percentiles for any period, job and queue without reading
the results table, and Prometheus histograms."""
import math

BASE = 2 ** 0.25
BUCKETS = 112  # BASE ** 112 ms = 2 ** 28 ms, about 3.1 days; longer durations land in the last bucket

# The bucket of a duration in milliseconds, in SQL (the rollup computes it in PostgreSQL).
BUCKET_SQL = f"LEAST(GREATEST(FLOOR(LN(GREATEST({{ms}}, 1)) / LN({BASE})), 0), {BUCKETS - 1})::int"


def bucket_upper_seconds(bucket: int) -> float:
    """The longest duration, in seconds, counted in `bucket`."""
    return BASE ** (bucket + 1) / 1000


def histogram_add(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    """`total` with the counts of `more` added (in place)."""
    for bucket, count in more.items():
        total[bucket] = total.get(bucket, 0) + count
    return total


def percentile(histogram: dict[str, int], fraction: float) -> float | None:
    """The duration in seconds under which `fraction` of the histogram's jobs fall (the geometric
    middle of the bucket it lands in), or None for an empty histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    wanted, seen = math.ceil(fraction * total), 0
    for bucket in sorted(histogram, key=int):
        seen += histogram[bucket]
        if seen >= wanted:
            return BASE ** (int(bucket) + 0.5) / 1000
    return None  # unreachable: seen reaches total
