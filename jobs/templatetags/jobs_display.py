"""How the job pages show values: times in one format to the second, ages in seconds when they are
seconds ("lost 12 s ago", not "0 minutes ago"), data as JSON written as it is (no \\u escapes)."""
import json
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()


def _moment(value) -> datetime | None:
    moment = parse_datetime(value) if isinstance(value, str) else value
    return timezone.localtime(moment) if isinstance(moment, datetime) else None


@register.filter
def when(value) -> str:
    """A datetime or ISO 8601 string as <time> reading 2026-12-06 08:35:12; "" for none."""
    moment = _moment(value)
    if moment is None:
        return ""
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), moment.strftime("%Y-%m-%d %H:%M:%S"))


@register.filter
def ago(value) -> str:
    """How long ago, to the second below a minute: "12 s ago", "4 min ago", "3 h ago", "2 days ago",
    with the moment itself as its title."""
    moment = _moment(value)
    if moment is None:
        return ""
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    age = (f"{seconds} s" if seconds < 60 else f"{seconds // 60} min" if seconds < 3600 else
           f"{seconds // 3600} h" if seconds < 86400 else f"{seconds // 86400} day{'s' if seconds >= 172800 else ''}")
    return format_html('<time datetime="{}" title="{}">{} ago</time>', moment.isoformat(),
                       moment.strftime("%Y-%m-%d %H:%M:%S"), age)


@register.filter
def as_json(value) -> str:
    """`value` as compact JSON, non-ASCII text as written (autoescaped by the template)."""
    return json.dumps(value, ensure_ascii=False)
