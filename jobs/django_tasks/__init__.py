"""The django.tasks backend (Django 6.0): Django's own tasks API, run by this engine as catalog jobs."""
