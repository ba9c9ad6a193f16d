"""Charts for the leaders' page: horizontal bar charts drawn as inline SVG on the server (no
script, no library); every chart sits beside a table of the same numbers, the accessible form."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

ROW_HEIGHT = 26
LABEL_WIDTH = 190
BAR_WIDTH = 300
VALUE_WIDTH = 70


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def bar_chart(rows: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """Return an SVG of one bar per (label, value), scaled to the largest value; the SVG is an
    image titled ``title`` (the numbers are read from the table beside it)."""
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = max(1, len(rows)) * ROW_HEIGHT + 4
    top = max((value for _, value in rows), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(rows):
        y = i * ROW_HEIGHT + 2
        bar = max(0.0, value) / top * BAR_WIDTH
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<text class="chart-label" x="{LABEL_WIDTH - 6}" y="{y + 17}" text-anchor="end">{escape(short)}</text>'
            f'<rect class="chart-bar" x="{LABEL_WIDTH}" y="{y + 3}" width="{bar:.1f}" height="{ROW_HEIGHT - 8}"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + bar + 4:.1f}" y="{y + 17}">{escape(_number(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
