from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("", views.job_list, name="list"),
    path("new/", views.job_new, name="new"),
    path("workflows/<str:workflow_id>/", views.workflow_detail, name="workflow"),
    path("workflows/<str:workflow_id>/cancel/", views.workflow_cancel, name="workflow_cancel"),
    path("<str:job_id>/", views.job_detail, name="detail"),
    path("<str:job_id>/retry/", views.job_retry, name="retry"),
    path("<str:job_id>/cancel/", views.job_cancel, name="cancel"),
]
