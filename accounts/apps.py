from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API tokens, and sign-up with an activation email sent by a job."""

    name = "accounts"
    verbose_name = "Accounts"
