from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from jobs import views
from jobs.api import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("jobs/", include("jobs.urls")),
    path("imports/", views.import_list, name="imports"),
    path("imports/<int:import_id>/errors.csv", views.import_errors, name="import_errors"),
    path("reports/<int:report_id>/", views.report_download, name="report_download"),
    path("accounts/signup/", views.signup_view, name="signup"),
    path("accounts/activate/<str:token>/", views.activate_view, name="activate"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
