"""Charts drawn on the server as SVG: no chart library to ship, nothing run in the browser, and the
page's Content-Security-Policy stays strict. Colours come from classes in operations.css."""
from datetime import datetime

from celery import states
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


def sparkline(values: list[int], width: int = 120, height: int = 24) -> str:
    """SVG polyline points drawing `values` left to right, scaled to the box (0 at the bottom)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{index * step:.1f},{height - value / top * (height - 2) - 1:.1f}"
                    for index, value in enumerate(values))


def stats_charts(figures: dict) -> list:
    """The charts of job_stats() figures: jobs finished by state, queue wait and run time p50/p95."""
    points, starts = figures["points"], figures["starts"]
    minutes = int(figures["step"].total_seconds() // 60)
    per = {1: "minute", 60: "hour", 1440: "day"}.get(minutes, f"{minutes // 60} hours")

    def line(key):
        return [point[key] for point in points]

    def finished(status):
        return [point["counts"].get(status, 0) for point in points]

    return [
        line_chart(title=f"Jobs finished per {per}",
                   starts=starts, series=[("success", "line-success", finished(states.SUCCESS)),
                                          ("failure", "line-failure", finished(states.FAILURE)),
                                          ("revoked", "line-revoked", finished(states.REVOKED))]),
        line_chart(title="Queue wait", starts=starts, unit="s",
                   series=[("p50", "line-p50", line("wait_p50")), ("p95", "line-p95", line("wait_p95"))]),
        line_chart(title="Run time", starts=starts, unit="s",
                   series=[("p50", "line-run50", line("run_p50")), ("p95", "line-run95", line("run_p95"))]),
    ]
