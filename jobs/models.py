"""The engine's models, each kept in the folder of its capability; Django finds them here."""
from .alerts.models import AlertIncident, AlertRule
from .limits.models import JobLimit, LimitKey, WaitingJob
from .queues.models import Queue, Worker
from .records.models import JobAction, JobRecord, UniqueKey
from .results.models import StoredTaskResult
from .stats.models import JobStats, JobStatsProgress
from .workflows.models import Workflow, WorkflowStep, new_workflow_id

__all__ = [
    "AlertIncident", "AlertRule", "JobAction", "JobLimit", "JobRecord", "JobStats", "JobStatsProgress", "LimitKey",
    "Queue", "StoredTaskResult", "UniqueKey", "WaitingJob", "Worker", "Workflow", "WorkflowStep", "new_workflow_id",
]
