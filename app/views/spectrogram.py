"""The spectrogram view: a clip's mel spectrogram in dB placed in seconds x mel (the axis reads Hz), with
overlays each with its own visibility and opacity (a detector's anomaly map with a colour bar, its
frame-score lane with the threshold drawn, ground-truth and labelled regions, the playhead), a
peak-downsampled waveform strip, and side by side more columns, one per chosen detector, each with its map and
lane on the same clip, linked in time and frequency with the first. Side by side, every column shows its
detector on the normalised scale (`app.clip_data.normalised_detection`), and the lanes share one score axis,
so the detectors compare.

Audio is never read on the GUI thread: `DisplayLoader` computes the overview when a clip is shown and the
full-resolution detail of the visible window as the user zooms into a long recording.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.settings import SpectrogramSettings
from app.views.display_loader import DisplayLoader
from app.views.overlays import DEFAULT_OPACITY, OVERLAYS, TRUTH_COLOUR, ClipDisplay
from app.views.side_by_side import SideBySide
from app.views.spectrogram_panel import Panel
from engine.audio.display import DisplayConfig, Envelope, SpectrogramTile, hz_to_mel, mel_to_hz
from engine.store.labels import Region

#: Zoomed in to at most this many full-resolution columns, the visible window is computed in detail.
DETAIL_COLUMNS = 6000


class SpectrogramView(SideBySide, QWidget):
    """`show_clip(display)` draws a clip; `set_detectors([a, b, ...])` picks the columns' detectors (side by side
    shows them all, else the first); overlays via `set_overlay`."""

    overview_shown = Signal(str)  # clip id, once its spectrogram is drawn
    detail_shown = Signal(float, float)
    seek_requested = Signal(float)  # the user clicked a time
    load_failed = Signal(str)
    region_clicked = Signal(int)  # a labelled region's id (a click outside every region sends nothing)
    region_edited = Signal(int, float, float, object, object)  # id, start_s, end_s, low_hz, high_hz
    region_drawn = Signal(float, float, object, object)  # start_s, end_s, low_hz, high_hz (None: no box)
    levels_dragged = Signal(float, float)  # the proposal on and off levels, dragged

    def __init__(self, settings: SpectrogramSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or SpectrogramSettings()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.label_mode = False
        self.selected_region: int | None = None
        #: The columns made so far (a column is made the first time a detector needs it, and kept).
        self.panels: list[Panel] = []
        self._add_panel()
        self.panels[0].attach(True)
        main = self.panels[0].plot
        self.wave: pg.PlotItem = self.graphics.ci.addPlot(row=2, col=0)
        self.wave.setMaximumHeight(90)
        self.wave.setXLink(main)
        self.wave.setMouseEnabled(x=True, y=False)
        self.wave.setMenuEnabled(False)
        self.wave.hideButtons()
        self.wave.setLabel("bottom", "time", units="s")
        self.wave.getAxis("left").setWidth(main.getAxis("left").width())
        self.wave.setYRange(-1, 1)
        self.wave_curve = self.wave.plot(pen=pg.mkPen("#455a64"), connect="pairs")
        self.wave_playhead = pg.InfiniteLine(angle=90, pen=pg.mkPen("#00c853", width=2))
        self.wave.addItem(self.wave_playhead)
        self.loader = DisplayLoader(self)
        self.loader.overview_ready.connect(self._overview_ready)
        self.loader.detail_ready.connect(self._detail_ready)
        self.loader.failed.connect(self._failed)
        self._detail_timer = QTimer(self, singleShot=True, interval=120, timeout=self._maybe_detail)
        main.sigXRangeChanged.connect(lambda *_: self._detail_timer.start())
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self._visible = {name: True for name in OVERLAYS}
        self._opacity = dict(DEFAULT_OPACITY)
        self.display: ClipDisplay | None = None
        #: The columns' detectors, the first column's first (side by side shows them all).
        self.detectors: tuple[str, ...] = ()
        self.side_by_side = False
        self.overview: SpectrogramTile | None = None
        self.overview_envelope: Envelope | None = None
        self.detail: SpectrogramTile | None = None
        self._request_clip: dict[int, str] = {}
        self.playhead_s = 0.0
        self.selection: tuple[float, float] | None = None
        self._set_side_by_side(False)

    # -- configuration -----------------------------------------------------------------------------------
    def display_config(self) -> DisplayConfig:
        s = self.settings
        return DisplayConfig(n_fft=s.n_fft, hop_length=s.hop_length, n_mels=s.n_mels)

    def mel_range(self) -> tuple[float, float]:
        if self.overview is not None:
            return self.overview.mel_low, self.overview.mel_high
        rate = self.display.sample_rate if self.display else 16000
        return float(hz_to_mel(0.0)), float(hz_to_mel(rate / 2))

    def apply_settings(self, settings: SpectrogramSettings) -> None:
        recompute = (settings.n_fft, settings.hop_length, settings.n_mels) != (
            self.settings.n_fft,
            self.settings.hop_length,
            self.settings.n_mels,
        )
        self.settings = settings
        if self.display is not None:
            if recompute:  # computed again with the new grid
                self.overview = None
                self.show_clip(self.display)
            else:
                for panel in self.panels:
                    panel.set_tile(0, self.overview, settings)
                    panel.set_tile(1, self.detail, settings)
                self._draw_lanes()

    # -- what is shown -------------------------------------------------------------------------------------
    def show_clip(self, display: ClipDisplay) -> None:
        same_clip = self.display is not None and self.display.clip_id == display.clip_id
        self.display = display
        if not same_clip or self.overview is None:
            self.overview = self.detail = self.overview_envelope = None
            for panel in self.panels:
                panel.set_tile(0, None, self.settings)
                panel.set_tile(1, None, self.settings)
            self.wave_curve.setData([], [])
            self.selection = None
            self.selected_region = None
            self.set_marks(None, None)
            self.set_playhead(0.0)
            main = self.panels[0].plot
            main.setLimits(
                xMin=0, xMax=max(display.duration_s, 1e-3), yMin=self.mel_range()[0], yMax=self.mel_range()[1]
            )
            main.setRange(xRange=(0, display.duration_s), yRange=self.mel_range(), padding=0)
            request = self.loader.load(display.path, self.display_config(), display.channel)
            self._request_clip = {request: display.clip_id}
        self._draw_lanes()
        self._draw_regions()

    def _draw_regions(self) -> None:
        display = self.display
        truth = [(s, e, TRUTH_COLOUR) for s, e in display.truth] if display else []
        for panel in self.panels:
            panel.set_truth(truth, self._opacity["truth"], self._visible["truth"])
            panel.labels.draw(
                display.regions if display else [],
                display.colours if display else {},
                self._opacity["labels"],
                self._visible["labels"],
                self.label_mode,
                self.selected_region,
                display.duration_s if display else 0.0,
                self.mel_range(),
                display.sources if display else {},
            )

    # -- labelled regions --------------------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        """On a short screen (a laptop) the lane and the waveform give up height before the spectrogram does."""
        super().resizeEvent(event)
        height = self.height()
        for panel in self.panels:
            panel.lane.setMaximumHeight(min(110, max(50, round(0.17 * height))))
        self.wave.setMaximumHeight(min(90, max(72, round(0.17 * height))))  # the time axis takes ~35 px of it

    def set_regions(
        self,
        regions: list[Region],
        colours: dict[str, str],
        selected: int | None = None,
        sources: dict[int, str] | None = None,
    ) -> None:
        """The shown clip's labelled regions changed (an edit, an undo, new proposals): redraw them. Drawn
        on the next turn of the event loop, since the item whose drag caused the edit is still in use.
        `sources`: each proposing model's detector, by model id."""
        if self.display is None:
            return
        self.display.regions, self.display.colours = regions, colours
        self.display.sources = dict(sources or {})
        self.selected_region = selected if any(r.region_id == selected for r in regions) else None
        QTimer.singleShot(0, self._draw_regions)

    def select_region(self, region_id: int | None) -> None:
        self.selected_region = region_id
        region = self.region(region_id)
        if region is not None:
            self.selection = (region.start_s, region.end_s)
        self._draw_regions()

    def region(self, region_id: int | None) -> Region | None:
        regions = self.display.regions if self.display else []
        return next((r for r in regions if r.region_id == region_id), None)

    def set_label_mode(self, on: bool) -> None:
        """In label mode a drag draws a region and manual regions can be moved and resized."""
        self.label_mode = on
        for panel in self.panels:
            panel.view_box.drawing = on
        self.graphics.setCursor(pg.QtCore.Qt.CursorShape.CrossCursor if on else pg.QtCore.Qt.CursorShape.ArrowCursor)
        self._draw_regions()

    def set_proposal_levels(self, on: float | None, off: float | None) -> None:
        """Show the proposal levels on the first column's lane (None: hide them). A line the user is
        dragging is left where the mouse has it. A lane on the normalised scale (side by side) shows none: the
        levels are ratios of the raw frame threshold."""
        if self.panels[0].normalised:
            on = off = None
        for name, value in (("on", on), ("off", off)):
            line = self.panels[0].levels[name]
            line.setVisible(value is not None and self._visible["lane"])
            if value is not None and not line.moving:
                line.blockSignals(True)
                line.setValue(value)
                line.blockSignals(False)

    def set_marks(self, start: float | None, end: float | None) -> None:
        for panel in self.panels:
            panel.set_marks(start, end)

    def show_region(self, region: Region) -> None:
        """Bring a region into view: keep the zoom when it fits, else show it with some context."""
        start, end = self.visible_range()
        if region.start_s >= start and region.end_s <= end:
            return
        span = max(end - start, (region.end_s - region.start_s) * 1.5)
        centre = (region.start_s + region.end_s) / 2
        self.set_visible_range(centre - span / 2, centre + span / 2)

    def _drawn(self, start: float, end: float, low_mel: object, high_mel: object) -> None:
        if self.display is None:
            return
        end = min(end, self.display.duration_s)
        low = None if low_mel is None else max(0.0, float(mel_to_hz(low_mel)))
        high = None if high_mel is None else min(self.display.sample_rate / 2, float(mel_to_hz(high_mel)))
        if end > start:
            self.region_drawn.emit(float(start), float(end), low, high)

    # -- overlays -------------------------------------------------------------------------------------------
    def overlay_visible(self, name: str) -> bool:
        return self._visible[name]

    def overlay_opacity(self, name: str) -> float:
        return self._opacity[name]

    def set_overlay(self, name: str, visible: bool | None = None, opacity: float | None = None) -> None:
        if name not in self._visible:
            raise KeyError(f"no overlay {name!r}; overlays: {', '.join(OVERLAYS)}")
        if visible is not None:
            self._visible[name] = bool(visible)
        if opacity is not None:
            self._opacity[name] = float(min(1.0, max(0.0, opacity)))
        if name in ("truth", "labels"):
            self._draw_regions()
        elif name == "playhead":
            for line in self.playhead_items():
                line.setVisible(self._visible["playhead"])
                line.setOpacity(self._opacity["playhead"])
        elif name == "map":
            for panel in self.panels:
                has_map = panel.lanes is not None and panel.lanes.anomaly_map is not None
                panel.map_image.setVisible(self._visible["map"] and has_map)
                panel.colour_bar.setVisible(self._visible["map"] and has_map)
                panel.map_image.setOpacity(self._opacity["map"])
        else:
            self._draw_lanes()
            for panel in self.panels:
                panel.curve.setOpacity(self._opacity["lane"])

    def playhead_items(self) -> list[pg.InfiniteLine]:
        return [line for panel in self.panels for line in panel.playheads] + [self.wave_playhead]

    # -- time: playhead, zoom, pan -----------------------------------------------------------------------------
    def set_playhead(self, seconds: float, follow: bool = False) -> None:
        self.playhead_s = seconds
        for line in self.playhead_items():
            line.setValue(seconds)
        if follow:
            start, end = self.visible_range()
            if not start <= seconds <= end:  # page on, keeping the zoom
                span = end - start
                self.set_visible_range(seconds - 0.1 * span, seconds + 0.9 * span)

    def visible_range(self) -> tuple[float, float]:
        start, end = self.panels[0].plot.viewRange()[0]
        return float(start), float(end)

    def set_visible_range(self, start: float, end: float) -> None:
        duration = self.display.duration_s if self.display else end
        span = min(end - start, duration)
        start = min(max(0.0, start), max(0.0, duration - span))
        self.panels[0].plot.setXRange(start, start + span, padding=0)

    def zoom(self, factor: float) -> None:
        start, end = self.visible_range()
        centre, half = (start + end) / 2, (end - start) / 2 / factor
        self.set_visible_range(centre - half, centre + half)

    def pan(self, fraction: float) -> None:
        start, end = self.visible_range()
        shift = (end - start) * fraction
        self.set_visible_range(start + shift, end + shift)

    def fit(self) -> None:
        if self.display is not None:
            self.set_visible_range(0.0, self.display.duration_s)
            self.panels[0].plot.setYRange(*self.mel_range(), padding=0)

    def _clicked(self, event) -> None:
        plots = [panel.plot for panel in self.shown_panels()]
        items = [*plots, self.wave, *(panel.lane for panel in self.shown_panels())]
        for item in items:
            if item.sceneBoundingRect().contains(event.scenePos()):
                point = item.vb.mapSceneToView(event.scenePos())
                seconds = float(point.x())
                if self.display is not None and 0 <= seconds <= self.display.duration_s:
                    mel = float(point.y()) if item in plots else None
                    region = self.region_at(seconds, mel)
                    self.selection = (
                        (region.start_s, region.end_s)
                        if region
                        else next(((s, e) for s, e in self.display.truth if s <= seconds <= e), None)
                    )
                    if region is not None:
                        self.region_clicked.emit(region.region_id)
                    self.seek_requested.emit(seconds)
                return

    def region_at(self, seconds: float, mel: float | None = None) -> Region | None:
        """The labelled region under a point: manual before proposals, the shortest when they overlap; a box
        only counts when the point is inside its band (or no band is known)."""
        if self.display is None:
            return None
        hits = [
            r
            for r in self.display.regions
            if r.start_s <= seconds <= r.end_s
            and (mel is None or not r.is_box or hz_to_mel(r.low_hz) <= mel <= hz_to_mel(r.high_hz))
        ]
        hits.sort(key=lambda r: (r.kind != "manual", r.end_s - r.start_s))
        return hits[0] if hits else None

    # -- audio arriving from the loader -------------------------------------------------------------------
    def _overview_ready(self, request: int, tile: SpectrogramTile, envelope: Envelope) -> None:
        if request != self.loader.request or self.display is None:
            return  # computed for a clip the user has already left
        self.overview = tile
        self.overview_envelope = envelope
        for panel in self.panels:
            panel.set_tile(0, tile, self.settings)
        self._draw_envelope(envelope)
        self._draw_lanes()
        self.overview_shown.emit(self._request_clip.get(request, ""))
        self._maybe_detail()

    def _detail_ready(self, request: int, tile: SpectrogramTile, envelope: Envelope) -> None:
        if request != self.loader.request:
            return
        self.detail = tile
        for panel in self.panels:
            panel.set_tile(1, tile, self.settings)
        self._draw_envelope(envelope)
        self.detail_shown.emit(tile.start_s, tile.end_s)

    def _draw_envelope(self, envelope: Envelope) -> None:
        x = np.repeat(envelope.times, 2)
        y = np.empty(x.size, dtype=np.float32)
        y[0::2], y[1::2] = envelope.low, envelope.high
        if envelope.times.size and np.all(envelope.low == envelope.high):  # raw samples: a line
            self.wave_curve.setData(envelope.times, envelope.high, connect="all")
        else:
            self.wave_curve.setData(x, y, connect="pairs")
        peak = float(max(np.abs(envelope.low).max(initial=0), np.abs(envelope.high).max(initial=0)))
        self.wave.setYRange(-max(peak, 1e-3), max(peak, 1e-3), padding=0.05)

    def _failed(self, request: int, message: str) -> None:
        if request != self.loader.request:
            return
        self.panels[0].plot.setTitle(f"<span style='color:#d32f2f'>{message}</span>", size="9pt")
        self.load_failed.emit(message)

    def _maybe_detail(self) -> None:
        """Ask for full resolution of what is visible once the overview is coarser than that."""
        if self.display is None or self.overview is None:
            return
        hop_s = self.settings.hop_length / self.overview.sample_rate
        if self.overview.column_s <= hop_s * 1.01:
            return  # the overview is already at full resolution
        start, end = self.visible_range()
        if (end - start) / hop_s > DETAIL_COLUMNS:
            if self.detail is not None:  # zoomed out again: the overview's tile and waveform
                self.detail = None
                for panel in self.panels:
                    panel.set_tile(1, None, self.settings)
                if self.overview_envelope is not None:
                    self._draw_envelope(self.overview_envelope)
            return
        if self.detail is not None and self.detail.start_s <= start and end <= self.detail.end_s:
            return
        margin = 0.25 * (end - start)
        self.loader.load_detail(
            self.display.path,
            max(0.0, start - margin),
            min(self.display.duration_s, end + margin),
            self.display_config(),
            self.display.channel,
        )

    def shutdown(self) -> None:
        self._detail_timer.stop()
        self.loader.shutdown()
