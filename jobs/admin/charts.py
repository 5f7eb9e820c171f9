"""Charts drawn on the server as SVG: no chart library to ship, nothing run in the browser, and the
page's Content-Security-Policy stays strict. Colours come from classes in operations.css."""
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 180, 56, 22, 24  # TOP: room for the title and legend


def _label(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return f"{value:.0f}"


def _segments(values: list[float | None], top: float, step: float) -> list[str]:
    """Polyline point lists for the runs of known values (a gap where a value is None)."""
    segments, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
            continue
        y = TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)
        current.append(f"{LEFT + index * step:.1f},{y:.1f}")
    if current:
        segments.append(current)
    return [" ".join(segment if len(segment) > 1 else segment * 2) for segment in segments]


def line_chart(*, title: str, starts: list[datetime], series: list[tuple[str, str, list[float | None]]],
               unit: str = "") -> SafeString:
    """An SVG line chart of `series` ((name, css class, values)) over the points starting at `starts`."""
    known = [value for _, _, values in series for value in values if value is not None]
    top = max(known, default=0) or 1
    step = (WIDTH - LEFT - 8) / max(len(starts) - 1, 1)
    lines = format_html_join("", '<polyline class="{}" points="{}"/>', (
        (css, points) for _, css, values in series for points in _segments(values, top, step)))
    legend = format_html_join("", '<tspan class="{}" dx="12">■ {}</tspan>', ((css, name) for name, css, _ in series))
    first, last = (f"{timezone.localtime(moment):%b %d %H:%M}" for moment in (starts[0], starts[-1]))
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">'
        '<text x="{left}" y="12" class="legend">{title}{legend}</text>'
        '<line class="axis" x1="{left}" y1="{bottom}" x2="{w}" y2="{bottom}"/>'
        '<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>'
        '<text x="{label_x}" y="{top_label}" class="tick" text-anchor="end">{top_value}</text>'
        '<text x="{label_x}" y="{bottom}" class="tick" text-anchor="end">0</text>'
        '<text x="{left}" y="{h}" class="tick">{first}</text>'
        '<text x="{w}" y="{h}" class="tick" text-anchor="end">{last}</text>{lines}</svg>',
        w=WIDTH, h=HEIGHT, title=title, left=LEFT, legend=legend, bottom=HEIGHT - BOTTOM, top=TOP,
        label_x=LEFT - 4, top_label=TOP + 8, top_value=_label(top, unit), first=first, last=last, lines=lines,
    )
