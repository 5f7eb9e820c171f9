"""Deprecated: the engine's selectors now live in the folder of their capability. This module forwards
the old names, with a DeprecationWarning naming the new place, and goes in the next release
(docs/how-to/upgrade.md lists them all)."""
from ._moved import forwarder

__getattr__ = forwarder(__name__, [
    "jobs.launching.selectors", "jobs.records.selectors", "jobs.workflows.selectors", "jobs.queues.selectors",
    "jobs.stats.selectors", "jobs.alerts.selectors",
])
