#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main():
    # `manage.py test` runs with the tests' settings (the site's, plus a test app and the test
    # runner), so that production settings never name anything in tests/.
    default = "tests.settings" if sys.argv[1:2] == ["test"] else "site_config.settings"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
