"""The labelled regions of one spectrogram column as pyqtgraph items, and the view box that draws new
ones.

Manual regions are coloured by class; proposals are paler with a dashed edge and name the detector's finding,
the detector and their confidence;
a region with a frequency band is a box (a rectangle ROI in seconds x mel). In label mode manual regions
can be dragged (move) and their edges pulled (resize); each drag ends in one `edited` call, which the
label editor turns into one undoable, saved edit. Outside label mode nothing moves, so a drag pans.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor

from engine.audio.display import hz_to_mel, mel_to_hz
from engine.store.labels import Region

#: edited(region_id, start_s, end_s, low_hz, high_hz) once a drag ends.
Edited = Callable[[int, float, float, "float | None", "float | None"], None]
SELECTED_PEN = pg.mkPen("#ffd600", width=3)
#: The colour of a label that is no class of the project (an anomaly detector's finding, "anomaly").
UNCLASSED_COLOUR = "#1e88e5"


def region_text(region: Region, sources: dict[int, str]) -> str:
    """A region's caption: its label; a proposal's is the detector's finding with a question mark, the
    detector and the confidence ("anomaly? (knn) 80%", "LEAK? (leak_binary) 95%"), so it is never taken
    for a class the user chose."""
    if region.kind != "proposal":
        return region.label
    source = sources.get(region.model_id) if region.model_id is not None else None
    return (
        f"{region.label}?"
        + (f" ({source})" if source else "")
        + (f" {region.confidence:.0%}" if region.confidence is not None else "")
    )


class DrawingViewBox(pg.ViewBox):
    """A view box that, in label mode, turns a left-button drag into a new region (Shift: a box)."""

    drawn = Signal(float, float, object, object)  # start_s, end_s, low_mel or None, high_mel or None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.drawing = False
        self._rubber: pg.QtWidgets.QGraphicsRectItem | None = None

    def mouseDragEvent(self, ev, axis=None) -> None:
        if not self.drawing or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        start = self.mapSceneToView(ev.buttonDownScenePos())
        now = self.mapSceneToView(ev.scenePos())
        box = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        rect = self._rect(start, now, box)
        if self._rubber is None:
            self._rubber = pg.QtWidgets.QGraphicsRectItem()
            self._rubber.setPen(pg.mkPen("#ffd600", width=1, style=Qt.PenStyle.DashLine))
            self._rubber.setBrush(pg.mkBrush(255, 214, 0, 50))
            self._rubber.setZValue(40)
            self.addItem(self._rubber, ignoreBounds=True)
        self._rubber.setRect(rect)
        if ev.isFinish():
            self.removeItem(self._rubber)
            self._rubber = None
            if rect.width() > 0:
                self.drawn.emit(rect.left(), rect.right(), rect.top() if box else None, rect.bottom() if box else None)

    def _rect(self, a: QPointF, b: QPointF, box: bool) -> QRectF:
        (x0, x1), (y0, y1) = sorted((a.x(), b.x())), sorted((a.y(), b.y()))
        if not box:
            y0, y1 = self.viewRange()[1]
        return QRectF(max(0.0, x0), y0, max(0.0, x1) - max(0.0, x0), y1 - y0)


class RegionItems:
    """The items of one column's labelled regions (not the truth regions), redrawn as a whole."""

    def __init__(self, plot: pg.PlotItem, edited: Edited) -> None:
        self.plot = plot
        self.edited = edited
        self.items: list[pg.GraphicsObject] = []
        self.by_id: dict[int, pg.GraphicsObject] = {}

    def clear(self) -> None:
        for item in self.items:
            self.plot.removeItem(item)
        self.items, self.by_id = [], {}

    def draw(
        self,
        regions: list[Region],
        colours: dict[str, str],
        opacity: float,
        visible: bool,
        editable: bool,
        selected: int | None,
        duration_s: float,
        mel_range: tuple[float, float],
        sources: dict[int, str] | None = None,
    ) -> None:
        """`sources`: the detector of each model (by id) whose proposals are drawn, named in their captions."""
        self.clear()
        for region in regions:
            colour = colours.get(region.label, UNCLASSED_COLOUR)
            proposal = region.kind == "proposal"
            fill = QColor(colour)
            fill.setAlphaF(opacity * (0.45 if proposal else 1.0))
            pen = pg.mkPen(
                colour,
                width=2 if not proposal else 1.5,
                style=Qt.PenStyle.DashLine if proposal else Qt.PenStyle.SolidLine,
            )
            if region.region_id == selected:
                pen = SELECTED_PEN
            movable = editable and region.kind == "manual"
            if region.is_box:
                item = self._box(region, pen, movable, duration_s, mel_range)
            else:
                item = pg.LinearRegionItem(
                    (region.start_s, region.end_s), movable=movable, brush=fill, pen=pen, bounds=(0, duration_s)
                )
                item.sigRegionChangeFinished.connect(lambda it, r=region: self._time_edited(r, it))
            item.setZValue(12 if region.region_id == selected else 11)
            item.setVisible(visible)
            self.plot.addItem(item)
            self.items.append(item)
            self.by_id[region.region_id] = item
            text = region_text(region, sources or {})
            caption = pg.TextItem(
                text,
                color=colour if region.region_id != selected else "#000000",
                anchor=(0, 0),
                fill=pg.mkBrush(255, 255, 255, 170),
            )
            top = hz_to_mel(region.high_hz) if region.is_box else mel_range[1]
            caption.setPos(region.start_s, float(top))
            caption.setZValue(13)
            caption.setVisible(visible)
            self.plot.addItem(caption)
            self.items.append(caption)

    def _box(self, region: Region, pen, movable: bool, duration_s: float, mel_range: tuple[float, float]) -> pg.ROI:
        low, high = float(hz_to_mel(region.low_hz)), float(hz_to_mel(region.high_hz))
        roi = pg.RectROI(
            (region.start_s, low),
            (region.end_s - region.start_s, high - low),
            pen=pen,
            movable=movable,
            resizable=movable,
            rotatable=False,
            removable=False,
            maxBounds=QRectF(0, mel_range[0], duration_s, mel_range[1] - mel_range[0]),
        )
        if not movable:
            for handle in roi.getHandles():
                roi.removeHandle(handle)
        roi.sigRegionChangeFinished.connect(lambda it, r=region: self._box_edited(r, it))
        return roi

    def _time_edited(self, region: Region, item: pg.LinearRegionItem) -> None:
        start, end = item.getRegion()
        if abs(start - region.start_s) > 1e-9 or abs(end - region.end_s) > 1e-9:
            self.edited(region.region_id, float(start), float(end), region.low_hz, region.high_hz)

    def _box_edited(self, region: Region, roi: pg.ROI) -> None:
        (x, y), (w, h) = roi.pos(), roi.size()
        low, high = float(mel_to_hz(y)), float(mel_to_hz(y + h))
        if (
            abs(x - region.start_s) > 1e-9
            or abs(x + w - region.end_s) > 1e-9
            or abs(low - region.low_hz) > 1e-3
            or abs(high - region.high_hz) > 1e-3
        ):
            self.edited(region.region_id, float(x), float(x + w), max(0.0, low), high)
