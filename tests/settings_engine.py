"""The engine alone: `jobs` and the third-party apps it needs, without any example app, plus the
test app. `python manage.py test tests.jobs --settings tests.settings_engine` (run by .ci/run)
shows that the example apps are optional."""
from tests.settings import *  # noqa: F403

EXAMPLE_APPS = ["accounts", "contacts", "reports", "examples"]
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in EXAMPLE_APPS]  # noqa: F405
FILE_UPLOAD_HANDLERS = [handler for handler in FILE_UPLOAD_HANDLERS if not handler.startswith("contacts.")]  # noqa: F405
