"""The engine's admin: job results (retry, cancel, fast at scale) and periodic tasks."""
from . import results, scheduling  # noqa: F401  (each registers its ModelAdmins)
