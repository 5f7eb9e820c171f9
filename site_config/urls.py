"""The site's URLs: each app's, included; the example apps only when installed."""
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from .api import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("jobs/", include("jobs.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
for app, prefix in (("accounts", "accounts/"), ("contacts", "imports/"), ("reports", "reports/")):
    if apps.is_installed(app):
        urlpatterns.append(path(prefix, include(f"{app}.urls")))
