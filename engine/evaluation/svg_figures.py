"""ROC curves and score histograms as SVG text, for the HTML report: drawn from the arrays of
`engine.evaluation.curves` with nothing but string formatting (the engine imports no Qt and no plotting
library), so a report is one self-contained file that any browser shows and that stays sharp when zoomed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from engine.evaluation.curves import KINDS, Histogram

#: Curve colours (matplotlib's and pyqtgraph's usual cycle), as the window's plots use them.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
#: The histogram's kinds: normals blue (dark: source, light: target), anomalies red likewise.
KIND_COLOURS = dict(zip(KINDS, ("#1f5fa8", "#8fb8e8", "#c0392b", "#f1948a"), strict=True))
THRESHOLD_COLOUR = "#111111"


@dataclass(frozen=True)
class Curve:
    name: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Frame:
    """Where the plot area lies in the SVG, and the data ranges it shows."""

    width: int
    height: int
    left: int = 52
    right: int = 12
    top: int = 30
    bottom: int = 40
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / ((high - low) or 1.0) * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        low, high = self.y_range
        return (
            self.height - self.bottom - (value - low) / ((high - low) or 1.0) * (self.height - self.top - self.bottom)
        )


def roc_svg(curves: Sequence[Curve], title: str, width: int = 340, height: int = 300) -> str:
    """ROC curves (false-positive rate across, true-positive rate up) with the chance diagonal; a curve
    without points is listed in the legend as "undefined"."""
    frame = Frame(width, height)
    parts = _axes(frame, title, "false-positive rate", "true-positive rate", _ticks(0, 1), _ticks(0, 1))
    parts.append(_line(frame, [0, 1], [0, 1], "#bbbbbb", dash=True))
    legend = []
    for index, curve in enumerate(curves):
        colour = COLOURS[index % len(COLOURS)]
        if curve.x.size:
            parts.append(_line(frame, curve.x, curve.y, colour))
        legend.append((curve.name if curve.x.size else f"{curve.name} (undefined)", colour))
    parts += _legend(frame, legend, bottom_right=True)
    return _svg(width, height, title, parts)


def histogram_svg(
    histogram: Histogram,
    threshold: float | None,
    title: str,
    width: int = 380,
    height: int = 300,
    log_scale: bool = False,
) -> str:
    """Stacked bars per kind of clip (normal / anomaly x source / target) over the score bins, with the
    decision threshold as a vertical line (outside the bins: an arrow at the edge it lies beyond). With
    `log_scale`, the histogram's edges and the threshold are log10 of the scores, and the axis says so."""
    edges = histogram.edges
    stacked = np.zeros(len(edges) - 1)
    for kind in KINDS:
        stacked = stacked + histogram.counts_by_kind[kind]
    top = max(float(stacked.max()) if stacked.size else 1.0, 1.0)
    y_ticks = _ticks(0, top, integers=True)
    frame = Frame(
        width, height, top=54, x_range=(float(edges[0]), float(edges[-1])), y_range=(0.0, max(top, y_ticks[-1]))
    )
    x_ticks = _ticks(float(edges[0]), float(edges[-1]), integers=log_scale)  # whole decades on a log scale
    x_ticks = [t for t in x_ticks if t <= edges[-1]]
    parts = _axes(
        frame, title, "score (log scale)" if log_scale else "score", "clips", x_ticks, y_ticks, log_x=log_scale
    )
    base = np.zeros(len(edges) - 1)
    for kind in KINDS:
        counts = histogram.counts_by_kind[kind]
        for b in np.flatnonzero(counts):
            x0, x1 = frame.x(edges[b]), frame.x(edges[b + 1])
            y0, y1 = frame.y(base[b] + counts[b]), frame.y(base[b])
            low, high = (10 ** edges[b], 10 ** edges[b + 1]) if log_scale else (edges[b], edges[b + 1])
            parts.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0 - 0.5, 0.5):.1f}" height="{y1 - y0:.1f}" '
                f'fill="{KIND_COLOURS[kind]}"><title>{escape(kind)}: {int(counts[b])} clip(s), '
                f"{low:.4g} to {high:.4g}</title></rect>"
            )
        base = base + counts
    if threshold is not None and math.isfinite(threshold):
        parts.append(_threshold_mark(frame, threshold, log_scale))
    parts += _legend_rows(frame, [(k, KIND_COLOURS[k]) for k in KINDS], y=30)
    return _svg(width, height, title, parts)


def _threshold_mark(frame: Frame, threshold: float, log_scale: bool = False) -> str:
    """The threshold (log10 of it with `log_scale`) as a vertical line labelled with its value."""
    low, high = frame.x_range
    inside = low <= threshold <= high
    x = frame.x(min(max(threshold, low), high))
    y_top, y_bottom = frame.top, frame.height - frame.bottom
    shown = 10**threshold if log_scale else threshold
    label = f"threshold {shown:.4g}" + ("" if inside else (" &#8594;" if threshold > high else " &#8592;"))
    anchor = "end" if x > (frame.left + frame.width - frame.right) / 2 + 40 else "start"
    shift = -4 if anchor == "end" else 4
    return (
        f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_bottom}" stroke="{THRESHOLD_COLOUR}" '
        f'stroke-width="1.5" stroke-dasharray="{"" if inside else "3,3"}"/>'
        f'<text x="{x + shift:.1f}" y="{y_top + 10}" font-size="10" text-anchor="{anchor}">{label}</text>'
    )


def _svg(width: int, height: int, title: str, parts: list[str]) -> str:
    body = "".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="sans-serif" role="img" aria-label="{escape(title)}">'
        f'<rect width="{width}" height="{height}" fill="white"/>{body}</svg>'
    )


def _axes(
    frame: Frame,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    log_x: bool = False,
) -> list[str]:
    left, right = frame.left, frame.width - frame.right
    top, bottom = frame.top, frame.height - frame.bottom
    parts = [
        f'<text x="{frame.width / 2:.0f}" y="18" font-size="12" font-weight="bold" '
        f'text-anchor="middle">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#444"/>',
        f'<text x="{(left + right) / 2:.0f}" y="{frame.height - 6}" font-size="11" '
        f'text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="12" y="{(top + bottom) / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + bottom) / 2:.0f})">{escape(y_label)}</text>',
    ]
    for value in x_ticks:
        x = frame.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>')
        shown = 10**value if log_x else value
        parts.append(f'<text x="{x:.1f}" y="{bottom + 15}" font-size="10" text-anchor="middle">{shown:.3g}</text>')
    for value in y_ticks:
        y = frame.y(value)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eeeeee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{value:.3g}</text>')
    return parts


def _line(frame: Frame, xs, ys, colour: str, dash: bool = False) -> str:
    points = " ".join(f"{frame.x(float(x)):.1f},{frame.y(float(y)):.1f}" for x, y in zip(xs, ys, strict=True))
    style = ' stroke-dasharray="4,3"' if dash else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"{style}/>'


def _legend(frame: Frame, entries: list[tuple[str, str]], bottom_right: bool, boxes: bool = False) -> list[str]:
    right = frame.width - frame.right - 6
    step = 13
    if bottom_right:
        y = frame.height - frame.bottom - 8 - step * (len(entries) - 1)
    else:
        y = frame.top + 24
    parts = []
    for name, colour in entries:
        mark = (
            f'<rect x="{right - 10}" y="{y - 8}" width="9" height="9" fill="{colour}"/>'
            if boxes
            else f'<line x1="{right - 14}" y1="{y - 4}" x2="{right}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(
            f'{mark}<text x="{right - 18}" y="{y}" font-size="10" text-anchor="end" '
            f'paint-order="stroke" stroke="white" stroke-width="3">{escape(name)}</text>'
        )
        y += step
    return parts


def _legend_rows(frame: Frame, entries: list[tuple[str, str]], y: int) -> list[str]:
    """A legend of coloured boxes above the plot, two to a row."""
    left, right = frame.left, frame.width - frame.right
    parts = []
    for index, (name, colour) in enumerate(entries):
        x = left + (index % 2) * (right - left) / 2
        row_y = y + (index // 2) * 12
        parts.append(
            f'<rect x="{x:.1f}" y="{row_y - 8}" width="9" height="9" fill="{colour}"/>'
            f'<text x="{x + 13:.1f}" y="{row_y}" font-size="10">{escape(name)}</text>'
        )
    return parts


def _ticks(low: float, high: float, integers: bool = False, count: int = 5) -> list[float]:
    """About `count` round tick values from `low` to `high` (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integers:
        step = max(1.0, round(step))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(0.0 if abs(value) < 1e-12 * step else value)
        value += step
    if integers and ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks
