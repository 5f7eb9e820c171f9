"""Forms built from the job catalog: a job's declared argument types become form fields."""
from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from pydantic.fields import FieldInfo

from .catalog import JobTask

FIELD_TYPES = {int: forms.IntegerField, float: forms.FloatField, str: forms.CharField, bool: forms.BooleanField}


def _form_field(field: FieldInfo) -> forms.Field:
    options: dict[str, Any] = {"required": field.is_required() and field.annotation is not bool}
    if not field.is_required():
        options["initial"] = field.default
    for constraint in field.metadata:  # e.g. Field(ge=1, le=600)
        if hasattr(constraint, "ge"):
            options["min_value"] = constraint.ge
        if hasattr(constraint, "le"):
            options["max_value"] = constraint.le
    field_class = FIELD_TYPES.get(field.annotation)
    if field_class is None:  # lists, dicts, models: typed as JSON, checked by the catalog
        return forms.JSONField(help_text="JSON", **options)
    if field_class not in (forms.IntegerField, forms.FloatField):
        options.pop("min_value", None), options.pop("max_value", None)
    return field_class(**options)


def arguments_form_class(job: JobTask) -> type[forms.Form]:
    """A form with one field per declared argument of `job`."""
    fields = {name: _form_field(field) for name, field in job.arguments_model.model_fields.items()}
    return type(f"{job.name}Form", (forms.Form,), fields)


class SignupForm(UserCreationForm):
    """A new account: username, email (required, one account per address), password twice."""

    email = forms.EmailField(help_text="The activation link is sent here.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address exists already. Sign in instead.")
        return email


class ContactImportForm(forms.Form):
    file = forms.FileField(help_text="A UTF-8 CSV file whose first line names its columns: email, name, phone.")
