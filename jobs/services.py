"""Deprecated: the engine's services now live in the folder of their capability. This module forwards
the old names, with a DeprecationWarning naming the new place, and goes in the next release.

    jobs.services.job_launch        -> jobs.launching.services.job_launch
    jobs.services.workflow_launch   -> jobs.workflows.services.workflow_launch
    jobs.services.queue_pause       -> jobs.queues.services.queue_pause
    (docs/how-to/upgrade.md lists them all)
"""
from ._moved import forwarder

__getattr__ = forwarder(__name__, [
    "jobs.launching.services", "jobs.records.services", "jobs.workflows.services", "jobs.queues.services",
    "jobs.scheduling.services", "jobs.stats.services", "jobs.alerts.services",
])
