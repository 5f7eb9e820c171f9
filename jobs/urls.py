"""The engine's pages (namespace "jobs"): each capability's views, under /jobs/."""
from django.urls import path

from .launching import views as jobs
from .workflows import views as workflows

app_name = "jobs"

urlpatterns = [
    path("", jobs.job_list, name="list"),
    path("new/", jobs.job_new, name="new"),
    path("workflows/<str:workflow_id>/", workflows.workflow_detail, name="workflow"),
    path("workflows/<str:workflow_id>/cancel/", workflows.workflow_cancel, name="workflow_cancel"),
    path("<str:job_id>/", jobs.job_detail, name="detail"),
    path("<str:job_id>/retry/", jobs.job_retry, name="retry"),
    path("<str:job_id>/cancel/", jobs.job_cancel, name="cancel"),
]
