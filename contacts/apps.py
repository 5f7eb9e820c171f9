from django.apps import AppConfig


class ContactsConfig(AppConfig):
    """Contacts, filled by CSV uploads imported in chunks by a job on the `long` queue."""

    name = "contacts"
    verbose_name = "Contacts"
