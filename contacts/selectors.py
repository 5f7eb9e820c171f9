"""Reads of imports, shared by the API and the pages."""
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import ContactImport


def imports_visible_to(*, user: AbstractBaseUser) -> QuerySet[ContactImport]:
    """Every CSV import for those with the admin's view permission, else `user`'s own uploads."""
    if user.has_perm("contacts.view_contactimport"):
        return ContactImport.objects.all()
    return ContactImport.objects.filter(uploaded_by=user)
