"""Forms built from the job catalog: each declared argument type gets the input that fits it."""
import enum
from datetime import date, datetime
from typing import Any, Literal, get_args, get_origin

from django import forms
from django.contrib.postgres.forms import SimpleArrayField
from pydantic import AnyUrl
from pydantic.fields import FieldInfo

from ..catalog import JobTask

SCALARS = {int: forms.IntegerField, float: forms.FloatField, str: forms.CharField}


def _choice_field(values: list, options: dict[str, Any]) -> forms.Field:
    by_text = {str(value): value for value in values}
    return forms.TypedChoiceField(choices=[(text, text) for text in by_text], coerce=by_text.__getitem__,
                                  **options)


def _form_field(field: FieldInfo) -> forms.Field:
    annotation = field.annotation
    options: dict[str, Any] = {"required": field.is_required() and annotation is not bool}
    if not field.is_required():
        options["initial"] = field.default.value if isinstance(field.default, enum.Enum) else field.default
    bounds = {}
    for constraint in field.metadata:  # e.g. Field(ge=1, le=600)
        if getattr(constraint, "ge", None) is not None:
            bounds["min_value"] = constraint.ge
        if getattr(constraint, "le", None) is not None:
            bounds["max_value"] = constraint.le
    if annotation in (int, float):
        return SCALARS[annotation](**options, **bounds)
    if annotation is str:
        return forms.CharField(**options)
    if annotation is bool:
        return forms.BooleanField(**options)
    if isinstance(annotation, type) and issubclass(annotation, AnyUrl):
        return forms.URLField(assume_scheme="https", **options)
    if annotation is datetime:
        return forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), **options)
    if annotation is date:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **options)
    if get_origin(annotation) is Literal:
        return _choice_field(list(get_args(annotation)), options)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice_field([member.value for member in annotation], options)
    if get_origin(annotation) is list and get_args(annotation) and get_args(annotation)[0] in SCALARS:
        base = SCALARS[get_args(annotation)[0]]()
        return SimpleArrayField(base, delimiter="\n", widget=forms.Textarea(attrs={"rows": 4}),
                                help_text="One per line.", **options)
    # Dicts, models, nested lists: typed as JSON, checked against the declared type by the catalog.
    return forms.JSONField(help_text="JSON", **options)


def arguments_form_class(task: JobTask) -> type[forms.Form]:
    """A form with one field per declared argument of `task`."""
    fields = {name: _form_field(field) for name, field in task.arguments_model.model_fields.items()}
    return type(f"{task.name}Form", (forms.Form,), fields)
