"""The site's one JSON API: its authentication, its errors, and each installed app's router.
OpenAPI docs at /api/docs."""
from django.apps import apps
from ninja import NinjaAPI

from jobs import http
from jobs.launching import api as jobs_api
from jobs.workflows import api as workflows_api

auth = [http.SignedInSession()]
if apps.is_installed("accounts"):
    from accounts.auth import BearerToken

    auth.insert(0, BearerToken())

api = NinjaAPI(title="Jobs API", version="1", urls_namespace="api", auth=auth)
http.install_error_handlers(api)
api.add_router("/jobs/", jobs_api.router)
api.add_router("/workflows/", workflows_api.router)
if apps.is_installed("contacts"):
    import contacts.api

    api.add_router("/imports/", contacts.api.router)
