"""The Prometheus endpoint's metrics, read fresh at each scrape (prometheus_client's custom
collector): queues from the broker, jobs by state, finished-job counters and wait/run histograms
from the job statistics' all-time rows (a few rows, however many results), workers, beat.

Names follow celery-exporter's spirit under a `jobs_` prefix; the README lists them, and
docker/prometheus-alerts.yml has Alertmanager rules written against them (with promtool unit tests
beside them). A job is labelled `task`, never `job`: Prometheus gives every scraped series a `job`
label of its own and would rename ours `exported_job`. Labels are bounded: a task name outside the
catalog (Celery's own tasks, a chord body stored without a name, another app's results in the same
table) and a queue this site does not know are exported as "other", so no stray row adds series for
good."""
import time

import redis
from django.conf import settings
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..catalog import catalog
from ..limits.selectors import waiting_on_limits
from ..queues.broker import BrokerUnavailable, queues_counted, queues_stats
from ..queues.selectors import job_queue_names, paused_queues, workers_overview
from ..records.selectors import COUNT_CAP, unfinished_counts
from ..records.services import job_queue
from ..scheduling.beat import lock_name
from ..stats.histograms import BASE, bucket_upper_seconds, histogram_add
from ..stats.models import JobStats

# Histogram buckets in seconds, as Prometheus users expect them; each of the statistics' finer
# buckets is counted under the first bound at or above its own upper bound.
OTHER = "other"  # the label of a task or queue outside the bounded set

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600]


def prometheus_buckets(histogram: dict[str, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs ending with +Inf, and the approximate sum of the durations."""
    counts = [0] * (len(BOUNDS) + 1)
    total = 0.0
    for bucket, count in histogram.items():
        upper = bucket_upper_seconds(int(bucket))
        counts[next((index for index, bound in enumerate(BOUNDS) if upper <= bound), len(BOUNDS))] += count
        total += count * BASE ** (int(bucket) + 0.5) / 1000
    cumulative, running = [], 0
    for bound, count in zip([*map(floatToGoString, BOUNDS), "+Inf"], counts, strict=True):
        running += count
        cumulative.append((bound, running))
    return cumulative, total


class JobsCollector(Collector):
    def collect(self):
        yield from self.queues()
        yield from self.jobs()
        yield from self.workers()
        yield from self.beat()

    def queues(self):
        up = GaugeMetricFamily("jobs_broker_up", "1 when RabbitMQ itself (AMQP) answered this scrape.")
        management_up = GaugeMetricFamily("jobs_broker_management_up",
                                          "1 when RabbitMQ's management API (unacked counts, rates) answered this scrape.")
        gauges = {
            "ready": GaugeMetricFamily("jobs_queue_messages_ready", "Jobs waiting in the queue.", labels=["queue"]),
            "unacked": GaugeMetricFamily("jobs_queue_messages_unacked", "Jobs workers hold (running or prefetched).",
                                         labels=["queue"]),
            "consumers": GaugeMetricFamily("jobs_queue_consumers", "Workers consuming the queue.", labels=["queue"]),
        }
        paused = GaugeMetricFamily("jobs_queue_paused", "1 while the queue is paused.", labels=["queue"])
        names = [*job_queue_names(), settings.DEAD_LETTER_QUEUE]
        try:
            figures = queues_stats()
        except BrokerUnavailable:
            figures = None
        try:  # ready and consumers as of now, from RabbitMQ itself, whether or not its management API answers
            counted = queues_counted(names)
        except BrokerUnavailable:
            counted = None
        up.add_metric([], 1 if counted is not None else 0)
        management_up.add_metric([], 1 if figures is not None else 0)
        paused_names = paused_queues()
        for name in names:
            if name != settings.DEAD_LETTER_QUEUE:
                paused.add_metric([name], 1 if name in paused_names else 0)
            if counted and name in counted:
                gauges["ready"].add_metric([name], counted[name][0])
                gauges["consumers"].add_metric([name], counted[name][1])
            if figures and name in figures:
                gauges["unacked"].add_metric([name], figures[name].unacked)
        yield management_up
        yield up
        yield paused
        yield from gauges.values()

    def jobs(self):
        unfinished = GaugeMetricFamily("jobs_unfinished", "Jobs queued or running, by state (counted up to "
                                       f"{COUNT_CAP}).", labels=["state"])
        for state, count in unfinished_counts().items():
            unfinished.add_metric([state], count)
        yield unfinished
        yield from self.limits()

        finished = CounterMetricFamily(
            "jobs_finished", "Jobs finished, by task, queue and final state (counted every minute, 10 to 70 "
            "seconds after they finish).", labels=["task", "queue", "state"])
        note = " The sum is estimated from the buckets (within 10%)."
        wait = HistogramMetricFamily("jobs_wait_seconds", "Time from launch to start." + note, labels=["task", "queue"])
        run = HistogramMetricFamily("jobs_run_seconds", "Time from start to end." + note, labels=["task", "queue"])
        # Every catalog job on its own queue starts at 0, so that rate() sees its first jobs (a
        # series born at 41 reads as no increase); then whatever was counted, under bounded labels.
        tasks, queues = set(catalog()), set(job_queue_names())
        counts: dict[tuple[str, str], dict[str, int]] = {}
        merged: dict[tuple[str, str], tuple[dict, dict]] = {}
        for name in tasks:
            counts[name, job_queue(name)] = dict.fromkeys(JobStats.STATE_FIELDS, 0)
            merged[name, job_queue(name)] = ({}, {})
        for row in JobStats.objects.filter(period=JobStats.Period.TOTAL):
            labels = (row.task_name if row.task_name in tasks else OTHER, row.queue if row.queue in queues else OTHER)
            histogram_add(counts.setdefault(labels, dict.fromkeys(JobStats.STATE_FIELDS, 0)), row.counts)
            wait_total, run_total = merged.setdefault(labels, ({}, {}))
            histogram_add(wait_total, row.wait)
            histogram_add(run_total, row.run)
        for labels, by_state in sorted(counts.items()):
            for state, count in by_state.items():
                finished.add_metric([*labels, state], count)
        for labels, (wait_histogram, run_histogram) in sorted(merged.items()):
            for family, histogram in ((wait, wait_histogram), (run, run_histogram)):
                buckets, total = prometheus_buckets(histogram)
                family.add_metric(list(labels), buckets=buckets, sum_value=total)
        yield finished
        yield wait
        yield run

    def limits(self):
        """Jobs waiting on their limits and the longest wait, by limited job of the catalog (each at 0 when none
        waits), counted up to COUNT_CAP each."""
        waiting = GaugeMetricFamily("jobs_waiting_on_limit", f"Jobs waiting on their limit (rate or concurrency), "
                                    f"by task (counted up to {COUNT_CAP}).", labels=["task"])
        oldest = GaugeMetricFamily("jobs_waiting_on_limit_oldest_seconds", "How long the job waiting longest on its "
                                   "limit has waited, by task (0 when none waits).", labels=["task"])
        now = timezone.now()
        for name, (count, since) in waiting_on_limits().items():
            waiting.add_metric([name], count)
            oldest.add_metric([name], (now - since).total_seconds() if since else 0)
        yield waiting
        yield oldest

    def workers(self):
        workers = GaugeMetricFamily("jobs_workers", "Workers by state (lost: silent for three heartbeats).",
                                    labels=["state"])
        by_status = dict.fromkeys(["busy", "idle", "lost", "stopped"], 0)
        for worker in workers_overview():
            by_status[worker.status] += 1
        for status, count in by_status.items():
            workers.add_metric([status], count)
        yield workers

    def beat(self):
        """Beat renews its lock in Redis once a second while it schedules: the renewal is its tick.
        No sample while no beat holds the lock (or Redis cannot say): alert on absent()."""
        tick = GaugeMetricFamily("jobs_beat_last_tick_timestamp_seconds", "When beat last ticked (Unix time).")
        try:
            remaining = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).pttl(lock_name())
        except redis.exceptions.RedisError:
            remaining = None
        if remaining and remaining > 0:
            tick.add_metric([], time.time() - (settings.BEAT_LOCK_TIMEOUT * 1000 - remaining) / 1000)
        yield tick
