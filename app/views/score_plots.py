"""The evaluation dock's plots: ROC curves of every detector for one section and domain, and one detector's
score histogram (normal and anomalous clips of each domain) with its decision threshold as a line to drag.

Clicking a ROC point names the clips that detector flags at that point; clicking a histogram bar names the
clips in that bar; the dock filters the clip table to them. The curves and bins are
`engine.evaluation.curves`'s, as `earmark report` draws them; where a few clips score far above the rest
(a log scale in the report), the window pools them in the end bars, so the threshold line stays on the
scores' own scale while it is dragged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal

from engine.evaluation import curves

#: One colour per detector, in the table's column order (distinct in print and for red-green blindness).
DETECTOR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: Histogram kinds: normal clips in blues, anomalous ones in reds/oranges; target lighter than source.
KIND_COLOURS = {
    "normal source": (31, 119, 180),
    "normal target": (120, 180, 220),
    "anomaly source": (214, 39, 40),
    "anomaly target": (255, 150, 60),
}
THRESHOLD_PEN = pg.mkPen("#222222", width=2, style=pg.QtCore.Qt.PenStyle.DashLine)


class RocView(pg.PlotWidget):
    """ROC curves, one per detector; `point_clicked(detector, clip_ids, why)`."""

    point_clicked = Signal(str, object, str)

    def __init__(self) -> None:
        super().__init__(background="w")
        self.sets: dict[str, curves.ScoreSet] = {}
        self.domain: str | None = None
        self.thresholds: dict[str, np.ndarray] = {}
        _style(self, "ROC", "false-positive rate", "true-positive rate", legend_at=(-6, -6))  # below the curves
        self.setXRange(0, 1, padding=0.02)
        self.setYRange(0, 1, padding=0.02)
        self.setMouseEnabled(x=False, y=False)

    def show_sets(self, sets: list[curves.ScoreSet], domain: str | None, detectors: list[str]) -> None:
        """The ROC of each score set (one per detector) over `domain`'s normals and every anomaly."""
        self.clear()
        self.sets = {s.detector: s for s in sets}
        self.domain = domain
        self.thresholds = {}
        self.plot([0, 1], [0, 1], pen=pg.mkPen("#999", width=1, style=pg.QtCore.Qt.PenStyle.DotLine))
        for score_set in sets:
            fpr, tpr, thresholds = curves.roc_points(score_set, domain)
            if len(fpr) == 0:
                continue
            colour = _colour(score_set.detector, detectors)
            item = self.plot(
                fpr,
                tpr,
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                symbolPen=None,
                name=score_set.detector,
            )
            self.thresholds[score_set.detector] = np.asarray(thresholds)
            item.sigPointsClicked.connect(lambda _item, points, *_, d=score_set.detector: self._clicked(d, points))

    def _clicked(self, detector: str, points) -> None:
        if len(points):
            self.click_point(detector, int(points[0].index()))

    def click_point(self, detector: str, index: int) -> None:
        """The clips `detector` flags at its `index`th ROC point (score at or above that point's threshold)."""
        score_set = self.sets[detector]
        cut = float(self.thresholds[detector][index])
        keep = curves.domain_mask(score_set, self.domain) & (score_set.scores >= cut)
        clip_ids = [c for c, k in zip(score_set.clip_ids, keep, strict=True) if k]
        self.point_clicked.emit(detector, clip_ids, f"{detector} flags at score >= {cut:.4g}")


class ScoreHistogram(pg.PlotWidget):
    """One detector's scores in bins, by kind; the threshold as a line to drag.
    `threshold_moving(value)` while dragged, `threshold_dropped(value)` when let go,
    `bar_clicked(clip_ids, why)`."""

    threshold_moving = Signal(float)
    threshold_dropped = Signal(float)
    bar_clicked = Signal(object, str)

    def __init__(self) -> None:
        super().__init__(background="w")
        _style(self, "Scores", "score", "clips")
        self.plotItem.legend.setColumnCount(2)  # two short rows over the bars, not four beside them
        self.setMouseEnabled(x=False, y=False)
        self.histogram: curves.Histogram | None = None
        self.pooled = 0  # clips far from the rest, counted in the end bars
        self.score_set: curves.ScoreSet | None = None
        self.line = pg.InfiniteLine(angle=90, movable=True, pen=THRESHOLD_PEN, hoverPen=pg.mkPen("#000", width=3))
        self.line.setZValue(10)
        self.line_label = pg.InfLineLabel(
            self.line, "threshold", position=0.68, color="#222", fill=(255, 255, 255, 200)
        )
        self.line.sigPositionChanged.connect(lambda line: self.threshold_moving.emit(float(line.value())))
        self.line.sigPositionChangeFinished.connect(lambda line: self.threshold_dropped.emit(float(line.value())))
        self.scene().sigMouseClicked.connect(self._scene_clicked)

    def show_set(self, score_set: curves.ScoreSet | None) -> None:
        self.clear()
        self.score_set = score_set
        self.histogram = None
        if score_set is None or len(score_set.scores) == 0:
            self.setTitle("Scores: choose a detector's cell in the table", color="#222", size="10pt")
            return
        self.setTitle(
            f"Scores of {score_set.detector}, {score_set.machine_type} {score_set.section_id}",
            color="#222",
            size="10pt",
        )
        shown, pooled = pool_outliers(score_set)
        self.histogram = histogram = curves.histogram(shown)
        self.pooled = pooled
        far = f" ({pooled} far clips in the end bars)" if pooled else ""
        self.getAxis("bottom").setLabel(f"score{far}", color="#222")
        edges = np.asarray(histogram.edges, dtype=float)
        for kind, counts in histogram.counts_by_kind.items():
            if not np.any(counts):
                continue
            colour = KIND_COLOURS.get(kind, (120, 120, 120))
            self.plot(
                edges,
                np.asarray(counts, dtype=float),
                stepMode="center",
                fillLevel=0,
                brush=(*colour, 70),
                pen=pg.mkPen(colour, width=2),
                name=kind,
            )
        tallest = max((int(np.max(c)) for c in histogram.counts_by_kind.values() if len(c)), default=1)
        self.setYRange(0, 1.6 * tallest, padding=0)  # room above the bars for the legend
        self.addItem(self.line, ignoreBounds=True)
        if score_set.threshold is not None and np.isfinite(score_set.threshold):
            self.line.setValue(float(score_set.threshold))
            self.line.show()
            low, high = min(edges[0], score_set.threshold), max(edges[-1], score_set.threshold)
            self.setXRange(low, high, padding=0.08)
        else:
            self.line.hide()

    def set_threshold(self, value: float) -> None:
        """Move the line without saying so (the stored threshold changed, or an undo)."""
        self.line.blockSignals(True)
        try:
            self.line.setValue(value)
        finally:
            self.line.blockSignals(False)
        self.line_label.setText(f"threshold {value:.4g}")

    def _scene_clicked(self, event) -> None:
        if self.histogram is None or self.line.mouseHovering:
            return
        point = self.plotItem.vb.mapSceneToView(event.scenePos())
        self.click_at(float(point.x()))

    def click_at(self, x: float) -> bool:
        """The bar at score `x`: its clips (False where there is no bar)."""
        edges = np.asarray(self.histogram.edges if self.histogram is not None else [], dtype=float)
        if len(edges) < 2 or not edges[0] <= x <= edges[-1]:
            return False
        index = min(int(np.searchsorted(edges, x, side="right")) - 1, len(edges) - 2)
        clip_ids = list(self.histogram.clip_ids_by_bin[index])
        if not clip_ids:
            return False
        low, high = edges[index], edges[index + 1]
        if self.pooled and index == 0:  # the end bars hold the far clips too
            span = f"up to {high:.4g}"
        elif self.pooled and index == len(edges) - 2:
            span = f"{low:.4g} and above"
        else:
            span = f"{low:.4g} to {high:.4g}"
        why = f"{self.score_set.detector} histogram bar {span}"
        self.bar_clicked.emit(clip_ids, why)
        return True


def pool_outliers(score_set: curves.ScoreSet) -> tuple[curves.ScoreSet, int]:
    """The score set with far scores moved to the edge of the bulk (where a few clips score far above the
    rest, equal bins over the whole range would put nearly every clip in one bar), and how many were moved.
    The bulk: within three interquartile ranges of the quartiles, widened by a tenth and to the threshold."""
    scores = np.asarray(score_set.scores, dtype=float)
    finite = scores[np.isfinite(scores)]
    if finite.size < 10:
        return score_set, 0
    first, third = np.quantile(finite, [0.25, 0.75])
    spread = third - first
    low, high = first - 3 * spread, third + 3 * spread  # Tukey's "far out" fences
    if spread <= 0 or (finite.min() >= low and finite.max() <= high):  # no far scores: the whole range
        return score_set, 0
    low, high = max(low, finite.min()), min(high, finite.max())
    if score_set.threshold is not None and np.isfinite(score_set.threshold):
        low, high = min(low, score_set.threshold), max(high, score_set.threshold)
    margin = 0.1 * (high - low)
    low, high = low - margin, high + margin
    pooled = int(np.sum((finite < low) | (finite > high)))
    return dataclasses.replace(score_set, scores=np.clip(scores, low, high)), pooled


def _style(plot: pg.PlotWidget, title: str, x: str, y: str, legend_at: tuple[int, int] = (-6, 6)) -> None:
    plot.setTitle(title, color="#222", size="10pt")
    for side, text in (("bottom", x), ("left", y)):
        axis = plot.getAxis(side)
        axis.setLabel(text, color="#222")
        axis.setPen("#555")
        axis.setTextPen("#222")
    plot.setMenuEnabled(False)
    plot.showGrid(x=True, y=True, alpha=0.15)
    legend = plot.addLegend(offset=legend_at, labelTextColor="#222", labelTextSize="8pt")
    legend.setBrush(pg.mkBrush(255, 255, 255, 210))


def _colour(detector: str, detectors: list[str]) -> str:
    position = detectors.index(detector) if detector in detectors else 0
    return DETECTOR_COLOURS[position % len(DETECTOR_COLOURS)]
