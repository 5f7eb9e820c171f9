"""Reads of imports, shared by the API and the pages."""
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import ContactImport


def imports_visible_to(*, user: AbstractBaseUser) -> QuerySet[ContactImport]:
    """Staff see every CSV import, everyone else their own uploads."""
    return ContactImport.objects.all() if user.is_staff else ContactImport.objects.filter(uploaded_by=user)
