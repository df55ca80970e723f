"""Charts drawn on the server as inline SVG: no script, no style attribute (the page's policy allows
neither), colours from the console's stylesheet by class, a `<title>` on every mark for its value,
and the same figures in a table beside each chart for those who do not see it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
DASH = "\u2013"  # what is shown for a value that is not known


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]  # one per bucket; NaN where nothing is known
    css: str  # the stylesheet's colour class: c-ok, c-warn, c-bad, c-1 … c-8

    @property
    def total(self) -> float:
        return sum(v for v in self.values if not math.isnan(v))


def nice_ceiling(value: float) -> float:
    """The axis's top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def number(value: float) -> str:
    if math.isnan(value):
        return DASH
    if value == int(value):
        return f"{int(value):,}"
    shown = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    return shown.rstrip("0").rstrip(".")


def _x(index: int, count: int) -> float:
    return LEFT + PLOT_W * index / max(count, 1)


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H * (1 - min(value, top) / top)


def _axes(buckets: list[datetime], top: float, unit: str) -> list[str]:
    parts = ['<g class="axis" aria-hidden="true">']
    for fraction in (0.0, 0.5, 1.0):
        y = _y(top * fraction, top)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        label = escape(f"{number(top * fraction)}{unit}")
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    count = len(buckets)
    for index in sorted({0, count // 2, count - 1}) if count else []:
        x = _x(index, count) + PLOT_W / max(count, 1) / 2
        when = escape(buckets[index].strftime("%H:%M"))
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{when}</text>')
    parts.append("</g>")
    return parts


def _svg(title: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" aria-label="{escape(title)}">'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 (every value escaped above)


def stacked_bars(
    title: str, buckets: list[datetime], series: list[Series], unit: str = ""
) -> Markup:
    """One bar per bucket, its series stacked in the order given."""
    count = len(buckets)
    totals = [sum(s.values[i] for s in series if not math.isnan(s.values[i])) for i in range(count)]
    top = nice_ceiling(max(totals, default=0.0))
    body = _axes(buckets, top, unit)
    width = max(PLOT_W / max(count, 1) - 1.0, 1.0)
    for index, moment in enumerate(buckets):
        base = 0.0
        for s in series:
            value = s.values[index]
            if math.isnan(value) or value <= 0:
                continue
            y_top, y_base = _y(base + value, top), _y(base, top)
            label = escape(f"{moment:%H:%M} · {s.name}: {number(value)}{unit}")
            body.append(
                f'<rect class="{escape(s.css)}" x="{_x(index, count) + 0.5:.1f}" '
                f'y="{y_top:.1f}" width="{width:.1f}" height="{max(y_base - y_top, 0.5):.1f}">'
                f"<title>{label}</title></rect>"
            )
            base += value
    return _svg(title, body)


def lines(
    title: str, buckets: list[datetime], series: list[Series], unit: str = "", top: float = 0.0
) -> Markup:
    """One line per series, broken where a bucket holds nothing; a dot on each known value."""
    count = len(buckets)
    known = [v for s in series for v in s.values if not math.isnan(v)]
    top = top or nice_ceiling(max(known, default=0.0))
    body = _axes(buckets, top, unit)
    step = PLOT_W / max(count, 1)
    for s in series:
        run: list[str] = []
        for index, value in enumerate([*s.values, math.nan]):
            if math.isnan(value):
                if len(run) > 1:
                    body.append(f'<polyline class="{escape(s.css)}" points="{" ".join(run)}"/>')
                run = []
                continue
            x, y = _x(index, count) + step / 2, _y(value, top)
            run.append(f"{x:.1f},{y:.1f}")
            label = escape(f"{buckets[index]:%H:%M} · {s.name}: {number(value)}{unit}")
            body.append(
                f'<circle class="{escape(s.css)}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                f"<title>{label}</title></circle>"
            )
    return _svg(title, body)
