"""Workflows and their steps."""
from django.conf import settings
from django.db import models

from ..catalog import new_task_id
from ..records.models import JobRecord


def new_workflow_id() -> str:

    return new_task_id()


class Workflow(models.Model):
    """Jobs run as one: a graph of steps (chains, groups and chords of catalog jobs) launched,
    watched, cancelled and repaired together (jobs/workflows/specs.py checks them)."""

    class State(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        SUCCESS = "SUCCESS", "Succeeded"
        FAILURE = "FAILURE", "Failed"
        REVOKED = "REVOKED", "Cancelled"

    id = models.CharField(max_length=36, primary_key=True, default=new_workflow_id, editable=False)
    name = models.CharField(max_length=255, blank=True, db_index=True,
                            help_text="The declared workflow's name, or the one code gave it; empty for one launched as JSON.")
    spec = models.JSONField(help_text="The graph as launched: chain, group, chord and steps.")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="workflows"
    )
    origin = models.CharField(max_length=10, choices=JobRecord.Origin.choices, default=JobRecord.Origin.CODE)
    launcher = models.ForeignKey(JobRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="launched",
                                 help_text="The job that launched it: a declared workflow run from the catalog.")
    unique_key = models.CharField(max_length=64, null=True, blank=True, help_text=(
        "A unique declared workflow's key (@workflow(unique=...)): no two running workflows share one."))
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    steps_total = models.PositiveIntegerField()
    ends_waiting = models.PositiveIntegerField(help_text="Last steps (those nothing follows) not yet succeeded.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The last step's result; a list when several end it.")
    error = models.TextField(blank=True, help_text="Which step failed, and why.")
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["unique_key"], condition=models.Q(state="RUNNING"),
                                               name="jobs_workflow_unique_running")]

    def __str__(self):
        return f"{self.name or 'workflow'} {self.id}"


class WorkflowStep(models.Model):
    """One job of a workflow: what it runs, which steps it waits for, and where it stands.

    `waiting` counts its parents not yet succeeded; the worker that finishes the last of them
    sends it. `counted` says this step's success was counted in its children, once, however many
    times its message is delivered."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="Its place in the spec, from 0.")
    path = models.CharField(max_length=255, help_text="Where it is in the spec, e.g. chain[1].group[3].")
    task_name = models.CharField(max_length=255)
    kwargs = models.JSONField(default=dict, help_text="Its own arguments; the input comes from its parents.")
    input = models.CharField(max_length=100, blank=True, help_text="The parameter its parents' results are given as.")
    gathers = models.BooleanField(default=False, help_text="Whether the input is the list of several parents' results.")
    parents = models.ManyToManyField("self", symmetrical=False, related_name="children", blank=True)
    task_id = models.CharField(max_length=255, unique=True, help_text="The job running it now (its latest attempt).")
    waiting = models.PositiveIntegerField(help_text="Parents not yet succeeded.")
    counted = models.BooleanField(default=False)
    sending_at = models.DateTimeField(null=True, blank=True, help_text="When it was claimed to be sent.")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the broker confirmed its message.")

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="jobs_workflowstep_unique")]
        indexes = [models.Index(fields=["sending_at"], condition=models.Q(sent_at__isnull=True),
                                name="jobs_workflowstep_unsent")]

    def __str__(self):
        return f"{self.path} {self.task_name}"
