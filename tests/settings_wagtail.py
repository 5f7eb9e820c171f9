"""The site with Wagtail installed, a third-party app that declares its background work with Django's
tasks API: `make test-clients` runs tests/clients with these settings (Wagtail and what it needs come
from tests/clients/requirements.txt, not from the project's install)."""
from tests.settings import *  # noqa: F403

# Wagtail's apps, as its "integrating Wagtail into a Django project" page lists them.
INSTALLED_APPS += [  # noqa: F405
    "django.contrib.postgres", "wagtail.search", "wagtail.images", "wagtail.documents", "wagtail.snippets", "wagtail.users",
    "wagtail.sites", "wagtail.admin", "wagtail", "modelcluster", "taggit",
]
WAGTAIL_SITE_NAME = "Jobs"
WAGTAILADMIN_BASE_URL = "http://localhost"
