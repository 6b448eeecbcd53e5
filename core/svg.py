"""Small SVG charts for the HTML report: lines across cycles, a heatmap, a reliability diagram.

Plain SVG strings, no plotting library: the report must open offline, in any browser, from one
file, and tuneloop should not pull in matplotlib for four charts. Every text is escaped; every
mark carries a ``<title>`` so hovering shows its value.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563",
           "#ca8a04")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + step * index for index in range(count)]


def _label(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1000:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return f"{value:.1e}"


def line_chart(title: str, series: dict[str, list[tuple[int, float]]], *,
               reference: dict[str, float] | None = None, width: int = 420,
               height: int = 240) -> str:
    """Values over cycles: one line per series (x: cycle id), optional dashed reference lines
    (the base model's benchmark figures)."""
    points = [point for values in series.values() for point in values]
    reference = reference or {}
    if not points:
        return ""
    xs = sorted({x for x, _ in points})
    ys = [y for _, y in points if math.isfinite(y)] + [y for y in reference.values()
                                                        if math.isfinite(y)]
    low, high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if high - low < 1e-9:  # a flat line: a small band around it, not a huge empty range
        margin = max(abs(low) * 0.1, 0.05)
        low, high = low - margin, high + margin
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    left, right, top, bottom = 52, 12, 40, 40  # the legend sits between title and plot
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(x: float) -> float:
        if len(xs) == 1:
            return left + plot_w / 2
        return left + (x - xs[0]) / (xs[-1] - xs[0]) * plot_w

    def y_at(y: float) -> float:
        return top + (high - y) / (high - low) * plot_h

    parts = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
             f"<title>{escape(title)}</title>",
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="600">'
             f"{escape(title)}</text>",
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
             f'stroke="#d1d5db"/>']
    for tick in _ticks(low + pad, high - pad):
        y = y_at(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#f3f4f6"/><text x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{_label(tick)}</text>')
    for x in xs:
        parts.append(f'<text x="{x_at(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                     f"{x}</text>")
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" '
                 f'fill="#6b7280">cycle</text>')
    for index, (name, value) in enumerate(reference.items()):
        y = y_at(value)
        parts.append(f'<line class="reference" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="#6b7280" stroke-dasharray="5 4">'
                     f"<title>{escape(name)}: {value:.4f}</title></line>")
    legend_x = left + 4
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        values = sorted((x, y) for x, y in values if math.isfinite(y))
        if not values:
            continue
        path = " ".join(f"{'M' if n == 0 else 'L'}{x_at(x):.1f},{y_at(y):.1f}"
                        for n, (x, y) in enumerate(values))
        dashes = ' stroke-dasharray="6 3"' if index % 2 else ""  # lines that coincide show
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"'
                     f"{dashes}/>")
        for x, y in values:
            parts.append(f'<circle cx="{x_at(x):.1f}" cy="{y_at(y):.1f}" r="3.5" '
                         f'fill="{colour}"><title>{escape(name)}, cycle {x}: {y:.4f}</title>'
                         f"</circle>")
        parts.append(f'<rect x="{legend_x}" y="{top - 16}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{legend_x + 14}" y="{top - 7}">'
                     f"{escape(name)}</text>")
        legend_x += 24 + 7 * len(name)
    if reference:
        parts.append(f'<text x="{left + plot_w}" y="{top - 7}" text-anchor="end" '
                     f'fill="#6b7280">- - {escape(", ".join(reference))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(title: str, labels: Sequence[str], matrix: Sequence[Sequence[int]], *,
            row_title: str = "reference", column_title: str = "predicted") -> str:
    """A confusion matrix: rows are references, columns predictions; darker is more."""
    count = len(labels)
    if not count:
        return ""
    cell = max(12, min(36, 540 // count))
    label_space = min(160, 16 + 6 * max(len(label) for label in labels))
    left, top = label_space + 18, label_space + 28
    size = cell * count
    width, height = max(left + size + 12, 16 + 7 * len(title)), top + size + 12
    peak = max((value for row in matrix for value in row), default=0) or 1
    parts = [f'<svg class="chart heatmap" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
             f"<title>{escape(title)}</title>",
             f'<text x="8" y="14" font-weight="600">{escape(title)}</text>',
             f'<text x="{left + size / 2}" y="{top - label_space - 4}" text-anchor="middle" '
             f'fill="#6b7280">{escape(column_title)}</text>',
             f'<text transform="translate(12 {top + size / 2}) rotate(-90)" '
             f'text-anchor="middle" fill="#6b7280">{escape(row_title)}</text>']
    for index, label in enumerate(labels):
        short = escape(label if len(label) <= 24 else label[:23] + "…")
        parts.append(f'<text x="{left - 4}" y="{top + cell * index + cell / 2 + 4}" '
                     f'text-anchor="end">{short}</text>')
        x = left + cell * index + cell / 2 + 4
        parts.append(f'<text transform="translate({x} {top - 4}) rotate(-60)">{short}</text>')
    for row, label in enumerate(labels):
        for column, predicted in enumerate(labels):
            value = matrix[row][column]
            shade = value / peak
            diagonal = row == column
            colour = (f"rgba(22,163,74,{0.08 + 0.92 * shade:.3f})" if diagonal
                      else f"rgba(220,38,38,{0.04 + 0.96 * shade:.3f})" if value
                      else "#fafafa")
            parts.append(f'<rect class="cell" x="{left + cell * column}" y="{top + cell * row}" '
                         f'width="{cell - 1}" height="{cell - 1}" fill="{colour}">'
                         f"<title>{escape(label)} → {escape(predicted)}: {value}</title></rect>")
            if value and cell >= 20:
                parts.append(f'<text x="{left + cell * column + cell / 2}" '
                             f'y="{top + cell * row + cell / 2 + 4}" text-anchor="middle" '
                             f'fill="{"#fff" if shade > 0.6 else "#111"}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_diagram(title: str, bins: Sequence[tuple[float, float, int]], ece: float,
                        width: int = 320, height: int = 300) -> str:
    """Accuracy against confidence per bin (``(mean confidence, accuracy, count)``); the
    diagonal is perfect calibration. Bars below it: overconfident."""
    left, right, top, bottom = 44, 12, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
             f"<title>{escape(title)}</title>",
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="600">'
             f"{escape(title)} (ECE {ece:.3f})</text>",
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
             f'stroke="#d1d5db"/>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top}" '
             f'stroke="#9ca3af" stroke-dasharray="4 3"/>']
    count = len(bins)
    for index, (confidence, accuracy, size) in enumerate(bins):
        if not size:
            continue
        x = left + index / count * plot_w
        bar_h = accuracy * plot_h
        parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" '
                     f'width="{plot_w / count - 2:.1f}" height="{bar_h:.1f}" fill="#2563eb" '
                     f'fill-opacity="0.75"><title>confidence {confidence:.2f}: accuracy '
                     f"{accuracy:.2f} over {size} examples</title></rect>")
    for tick in (0, 0.5, 1):
        parts.append(f'<text x="{left - 6}" y="{top + plot_h - tick * plot_h + 4:.1f}" '
                     f'text-anchor="end">{tick:g}</text>'
                     f'<text x="{left + tick * plot_w:.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" '
                 f'fill="#6b7280">confidence</text><text transform="translate(12 '
                 f'{top + plot_h / 2}) rotate(-90)" text-anchor="middle" fill="#6b7280">'
                 f"accuracy</text></svg>")
    return "".join(parts)
