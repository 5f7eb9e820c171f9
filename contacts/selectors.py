"""Reads of imports, shared by the API and the pages."""
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Contact, ContactImport


def imports_visible_to(*, user: AbstractBaseUser) -> QuerySet[ContactImport]:
    """Every CSV import for those with the admin's view permission, else `user`'s own uploads."""
    if user.has_perm("contacts.view_contactimport"):
        return ContactImport.objects.all()
    return ContactImport.objects.filter(uploaded_by=user)


def contacts_visible_to(*, user: AbstractBaseUser) -> QuerySet[Contact]:
    """Every contact for those with the admin's view permission, else the ones `user` imported."""
    if user.has_perm("contacts.view_contact"):
        return Contact.objects.select_related("owner")
    return Contact.objects.filter(owner=user)


def import_summary_job_id(*, contact_import: ContactImport) -> str:
    """The job that ends an import (its summary step, as launched; the single job of an older import)."""
    if contact_import.workflow_id is None:
        return contact_import.task_id
    return contact_import.workflow.steps.get(task_name="jobs.import_contacts_summary").task_id
