"""The engine's models, each kept in the folder of its capability; Django finds them here."""
from .alerts.models import AlertIncident, AlertRule
from .queues.models import Queue, Worker
from .records.models import JobAction, JobRecord, UniqueKey
from .results.models import StoredTaskResult
from .stats.models import JobStats, JobStatsProgress
from .workflows.models import Workflow, WorkflowStep, new_workflow_id

__all__ = [
    "AlertIncident", "AlertRule", "JobAction", "JobRecord", "JobStats", "JobStatsProgress", "Queue", "StoredTaskResult",
    "UniqueKey", "Worker", "Workflow", "WorkflowStep", "new_workflow_id",
]
