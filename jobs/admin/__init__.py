"""The engine's admin: job results (retry, cancel, fast at scale), periodic tasks, and the
operations pages (queues, dead letters, workers)."""
from . import operations, results, scheduling, workflows  # noqa: F401  (each registers its ModelAdmins)
