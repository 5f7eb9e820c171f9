"""Users with permissions, for tests."""
from django.contrib.auth.models import Permission, User


def grant(user: User, *permissions: str) -> User:
    """Give `user` permissions named "app_label.codename"; returns a fresh instance (Django caches
    permissions per instance)."""
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)
