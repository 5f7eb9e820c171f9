"""The site's URLs: each app's, included; the example apps only when installed."""
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from jobs.metrics.views import metrics

from .api import api


def api_not_found(request):
    """404 for an address under /api/ that no route has, in the API's error shape."""
    return JsonResponse({"detail": f"No API endpoint at {request.path}. See /api/docs.", "errors": []}, status=404)


if apps.is_installed("accounts"):
    from accounts.forms import SignInForm

    login_view = auth_views.LoginView.as_view(authentication_form=SignInForm)
else:
    login_view = auth_views.LoginView.as_view()

# The admin's model sidebar takes 300 px from every list, cutting off the last columns of the jobs list
# at 1280 px; the index page and the breadcrumbs lead to every model as well.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/", api_not_found),  # unknown API addresses answer JSON too
    path("jobs/", include("jobs.urls")),
    path("metrics", metrics, name="metrics"),  # Prometheus' default path
    path("accounts/login/", login_view, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
for app, prefix in (("accounts", "accounts/"), ("contacts", "imports/"), ("reports", "reports/")):
    if apps.is_installed(app):
        urlpatterns.append(path(prefix, include(f"{app}.urls")))
