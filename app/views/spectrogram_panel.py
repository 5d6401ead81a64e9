"""One column of the spectrogram view: a spectrogram plot with one detector's anomaly map and colour bar
over it, the ground-truth and labelled regions, the playhead, and that detector's frame-score lane below;
and the Hz axis of a mel-placed image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from app.settings import SpectrogramSettings
from app.views.overlays import (
    THRESHOLD_COLOUR,
    Detection,
    colour_bar_ticks,
    map_colour_map,
    map_levels,
    raster_map,
    short_number,
    spectrogram_colour_map,
)
from app.views.region_items import DrawingViewBox, RegionItems
from engine.audio.display import SpectrogramTile, hz_to_mel, mel_to_hz

if TYPE_CHECKING:
    from app.views.spectrogram import SpectrogramView

#: The width of a colour bar's scale: room for "thr" and three digits, so three columns fit a laptop screen.
COLOUR_BAR_AXIS_WIDTH = 34
TICKS_HZ = (
    0,
    100,
    200,
    300,
    500,
    700,
    1000,
    1500,
    2000,
    3000,
    4000,
    5000,
    6000,
    8000,
    10000,
    12000,
    16000,
    20000,
    24000,
)


class HzAxis(pg.AxisItem):
    """The left axis of a mel-placed image: positions are mel, labels are Hz."""

    def tickValues(self, minVal: float, maxVal: float, size: float):
        mels = [float(hz_to_mel(hz)) for hz in TICKS_HZ]
        inside = [m for m in mels if minVal <= m <= maxVal]
        spacing = 18 * (maxVal - minVal) / max(size, 1.0)
        kept: list[float] = []
        for m in inside:
            if not kept or m - kept[-1] >= spacing:
                kept.append(m)
        return [(1.0, kept)]

    def tickStrings(self, values, scale, spacing):
        out = []
        for value in values:
            hz = float(mel_to_hz(value))
            out.append(f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:.0f}")
        return out


class ScoreAxis(pg.AxisItem):
    """The left axis of a frame-score lane: short labels (2.5k, not 2500), so a narrow column keeps them."""

    def tickStrings(self, values, scale, spacing):
        return [short_number(value * scale) for value in values]


def _title(detector: str, lanes: Detection | None, columns: int, normalised: bool = False) -> str:
    """A column's title: detector, score, decision, threshold. Side by side it is on two lines (on three from
    four columns on, so that each column stays narrow enough for a laptop screen), and the score is the
    normalised one ("z", in standard deviations of the model's held-out normals) or, for a model without
    one, says it is raw."""
    if lanes is None:
        return ""
    verdict = f"<span style='color:{THRESHOLD_COLOUR}'>anomaly</span>" if lanes.decision else "normal"
    if columns > 1:
        score = f"{'z' if normalised else 'raw score'} {short_number(lanes.score, 3)}"
        threshold = f"threshold {short_number(lanes.threshold, 3)}" if lanes.threshold is not None else ""
        no_map = ", no map" if lanes.anomaly_map is None else ""
        if columns > 3:  # the detector alone on the first line: the widest line is what sets a column's width
            return f"<b>{detector}</b><br>{verdict}, {score}{no_map}" + (f"<br>{threshold}" if threshold else "")
        return f"<b>{detector}</b>: {verdict}{no_map}<br>{score}" + (f", {threshold}" if threshold else "")
    title = f"<b>{detector}</b>: score {lanes.score:.4g}, {verdict}"
    if lanes.threshold is not None:
        title += f" (threshold {lanes.threshold:.4g})"
    if lanes.anomaly_map is None:
        title += "; no map, see its frame lane"
    return title


def _region(start: float, end: float, colour: str, opacity: float) -> pg.LinearRegionItem:
    fill = QColor(colour)
    fill.setAlphaF(opacity)
    edge = QColor(colour)
    item = pg.LinearRegionItem((start, end), movable=False, brush=fill, pen=pg.mkPen(edge, width=1))
    item.setZValue(10)
    return item


class Panel:
    """One column: a spectrogram plot with one detector's map over it, and that detector's lane below."""

    def __init__(self, layout: pg.GraphicsLayout, column: int, view: SpectrogramView) -> None:
        self.view = view
        self.layout = layout
        self.column = column
        self.view_box = DrawingViewBox()
        self.plot = pg.PlotItem(viewBox=self.view_box, axisItems={"left": HzAxis("left")})
        # The first column names its axes; the others line up with it (frequency is linked) and keep the room.
        self.axis_titles = column == 0
        self.plot.setLabel("left", "Hz" if self.axis_titles else None)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.images = [pg.ImageItem(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")]  # overview, detail
        for z, image in enumerate(self.images):
            image.setZValue(z)
            self.plot.addItem(image)
        self.map_image = pg.ImageItem(axisOrder="row-major")
        self.map_image.setZValue(5)
        self.plot.addItem(self.map_image)
        # The colour bar has a layout column of its own, so every plot of a column is as wide as the others
        # (linked plots line up their time axes by screen position).
        self.colour_bar = pg.ColorBarItem(
            values=(0, 1), colorMap=map_colour_map("inferno"), interactive=False, width=12
        )
        self.colour_bar.axis.setWidth(COLOUR_BAR_AXIS_WIDTH)  # three columns side by side fit a laptop screen
        self.colour_bar.setToolTip("The anomaly map's colour scale; the red line (thr): the model's frame threshold")
        self.colour_bar.setImageItem(self.map_image)
        # Where the model's frame threshold lies on the map's colour scale (the bar's own y runs 0 to 256).
        self.threshold_mark = pg.InfiniteLine(angle=0, pen=pg.mkPen(THRESHOLD_COLOUR, width=3))
        self.threshold_mark.setZValue(10)
        self.threshold_mark.setVisible(False)
        self.colour_bar.addItem(self.threshold_mark)
        self.lane = pg.PlotItem(axisItems={"left": ScoreAxis("left")})
        self.lane.setMaximumHeight(110)
        self.lane.setMenuEnabled(False)
        self.lane.hideButtons()
        self.lane.setLabel("left", "score" if self.axis_titles else None)
        self.lane.getAxis("left").setWidth(self.plot.getAxis("left").width())
        self.lane.setXLink(self.plot)
        self.lane.setMouseEnabled(x=True, y=False)
        self.curve = self.lane.plot(pen=pg.mkPen("#1565c0", width=1.5))
        self.threshold_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen("#d32f2f", width=1, style=pg.QtCore.Qt.DashLine),
            label="threshold",
            labelOpts={"position": 0.98, "color": "#d32f2f", "anchors": [(1, 1), (1, 1)]},
        )
        self.lane.addItem(self.threshold_line)
        self.threshold_line.setZValue(16)  # over the proposal levels: at ratio 1 the on level lies on it
        # The proposal levels, drawn on the lane of the detector that proposes; dragging them re-proposes.
        self.levels = {
            name: pg.InfiniteLine(
                angle=0,
                movable=True,
                pen=pg.mkPen(colour, width=2),
                hoverPen=pg.mkPen(colour, width=4),
                label=name,
                labelOpts={"position": where, "color": colour, "anchors": [(0, 1), (0, 1)]},
            )
            for name, colour, where in (("on", "#ef6c00", 0.03), ("off", "#f9a825", 0.16))
        }
        for line in self.levels.values():
            line.setVisible(False)
            line.setZValue(15)
            line.sigPositionChanged.connect(
                lambda _line: view.levels_dragged.emit(self.levels["on"].value(), self.levels["off"].value())
            )
            self.lane.addItem(line)
        self.playheads = [pg.InfiniteLine(angle=90, pen=pg.mkPen("#00c853", width=2)) for _ in range(2)]
        self.plot.addItem(self.playheads[0])
        self.lane.addItem(self.playheads[1])
        for line in self.playheads:
            line.setZValue(20)
        self.truth: list[pg.LinearRegionItem] = []
        self.labels = RegionItems(self.plot, view.region_edited.emit)
        self.marks = [
            pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffd600", width=2, style=pg.QtCore.Qt.DashLine)) for _ in range(2)
        ]
        for line in self.marks:
            line.setZValue(19)
            line.setVisible(False)
            self.plot.addItem(line)
        self.detector = ""
        self.lanes: Detection | None = None
        self.normalised = False

    def set_tile(self, which: int, tile: SpectrogramTile | None, settings: SpectrogramSettings) -> None:
        image = self.images[which]
        if tile is None:
            image.clear()
            return
        image.setImage(tile.db, levels=(settings.db_floor, settings.db_ceiling), autoLevels=False)
        image.setColorMap(spectrogram_colour_map(settings.colour_map))
        image.setRect(tile.start_s, tile.mel_low, tile.end_s - tile.start_s, tile.mel_high - tile.mel_low)

    def set_lanes(
        self,
        detector: str,
        lanes: Detection | None,
        mel_range: tuple[float, float],
        settings: SpectrogramSettings,
        normalised: bool = False,
    ) -> None:
        """Show `detector`'s detection of the clip (None: nothing); `normalised`: it is on the normalised
        scale (the title and the lane's axis say so)."""
        self.detector, self.lanes, self.normalised = detector, lanes, normalised
        columns = sum(panel.attached for panel in self.view.panels)
        # A title is as wide as its text at least: side by side it is short, so the columns fit a laptop.
        title = _title(detector, lanes, columns, normalised)
        self.plot.setTitle(title, size="8pt" if columns > 1 else "9pt")
        # pyqtgraph gives a title 30 px, two lines at 8 pt: a third line gets its room, or it would lie over
        # the spectrogram.
        height = 30 + 13 * max(0, title.count("<br>") - 1)
        self.plot.titleLabel.setMaximumHeight(height)
        self.plot.layout.setRowFixedHeight(0, height)
        if self.axis_titles:
            self.lane.setLabel("left", "z" if normalised else "score")
        raster = raster_map(lanes, *mel_range) if lanes is not None else None
        if raster is None:
            self.map_image.clear()
            self.map_image.setVisible(False)
            self.colour_bar.setVisible(False)
        else:
            image, (start, end) = raster
            low, high = map_levels(lanes)
            self.colour_bar.setColorMap(map_colour_map(settings.map_colour_map))
            self.colour_bar.setLevels((low, high))
            self._mark_threshold(low, high, lanes.frame_threshold)
            self.map_image.setImage(
                np.nan_to_num(image, nan=low - abs(high - low)), autoLevels=False, levels=(low, high)
            )
            self.map_image.setRect(start, mel_range[0], end - start, mel_range[1] - mel_range[0])
            self.map_image.setVisible(self.view.overlay_visible("map"))
            self.colour_bar.setVisible(self.view.overlay_visible("map"))
        if lanes is None or lanes.frame_times.size == 0:
            self.curve.setData([], [])
            self.threshold_line.setVisible(False)
        else:
            self.curve.setData(lanes.frame_times, lanes.frame_scores)
            self.threshold_line.setVisible(lanes.frame_threshold is not None and self.view.overlay_visible("lane"))
            if lanes.frame_threshold is not None:
                self.threshold_line.setValue(lanes.frame_threshold)
            self.lane.setYRange(*self.lane_extent(), padding=0.08)

    def lane_extent(self) -> tuple[float, float] | None:
        """The score range the lane needs: its finite frame scores and the frame threshold (None: no lane)."""
        lanes = self.lanes
        if lanes is None or lanes.frame_times.size == 0:
            return None
        finite = lanes.frame_scores[np.isfinite(lanes.frame_scores)]
        top = max([*finite.tolist(), lanes.frame_threshold or -np.inf]) if finite.size else 1.0
        bottom = float(finite.min()) if finite.size else 0.0
        return bottom, top if top > bottom else bottom + 1

    def _mark_threshold(self, low: float, high: float, threshold: float | None) -> None:
        """The threshold as a line across the colour bar and a label on its scale."""
        self.colour_bar.axis.setTicks([colour_bar_ticks(low, high, threshold)])
        inside = threshold is not None and high > low and low <= threshold <= high
        self.threshold_mark.setVisible(inside)
        if inside:
            self.threshold_mark.setValue(256 * (threshold - low) / (high - low))

    @property
    def attached(self) -> bool:
        """Whether this column is in the layout (on screen)."""
        return self.plot.scene() is not None

    def attach(self, on: bool) -> None:
        """Put this column's plots into the layout, or take them out (a hidden column takes no room)."""
        placed = self.attached
        # Shown columns share the width (their colour bars keep theirs); a column taken out gives its share back.
        self.layout.layout.setColumnStretchFactor(2 * self.column, 1 if on else 0)
        if on and not placed:
            self.layout.addItem(self.plot, row=0, col=2 * self.column)
            self.layout.addItem(self.colour_bar, row=0, col=2 * self.column + 1)
            self.layout.addItem(self.lane, row=1, col=2 * self.column)
        elif not on and placed:
            for item in (self.plot, self.colour_bar, self.lane):
                self.layout.removeItem(item)
                if item.scene() is not None:
                    item.scene().removeItem(item)

    def set_truth(self, spans: list[tuple[float, float, str]], opacity: float, visible: bool) -> None:
        for item in self.truth:
            self.plot.removeItem(item)
        self.truth = []
        for start, end, colour in spans:
            item = _region(start, end, colour, opacity)
            item.setVisible(visible)
            self.plot.addItem(item)
            self.truth.append(item)

    def set_marks(self, start: float | None, end: float | None) -> None:
        """The pending region's start and end marks (set with [ and ] before Enter commits them)."""
        for line, value in zip(self.marks, (start, end), strict=True):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(value)
