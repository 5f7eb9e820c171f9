"""Forms built from the job catalog: a job's declared argument types become form fields."""
from typing import Any

from django import forms
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


def arguments_form_class(task: JobTask) -> type[forms.Form]:
    """A form with one field per declared argument of `task`."""
    fields = {name: _form_field(field) for name, field in task.arguments_model.model_fields.items()}
    return type(f"{task.name}Form", (forms.Form,), fields)
