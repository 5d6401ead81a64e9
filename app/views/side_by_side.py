"""The spectrogram view's columns side by side: one per chosen detector, made the first time a detector needs
one and linked in time and frequency with the first; side by side with more than one column, every column
shows its detector on the normalised scale (`app.clip_data.normalised_detection`) and the lanes share one
score axis, so detectors on different scales compare. A mixin of `SpectrogramView`, which holds the panels,
the clip on display and the overlays' state."""

from __future__ import annotations

from collections.abc import Sequence

from app.views.spectrogram_panel import Panel


class SideBySide:
    """Mixed into `SpectrogramView` (it uses its graphics layout, panels, display, settings and overlays)."""

    def set_detectors(self, detectors: Sequence[str | None]) -> None:
        """The columns' detectors, the first column's first; each is shown once (a repeat or None is left
        out). Side by side shows a column for each, else the first only."""
        self.detectors = tuple(dict.fromkeys(d for d in detectors if d))
        self._set_side_by_side(self.side_by_side)
        self._draw_lanes()

    def set_side_by_side(self, on: bool) -> None:
        self._set_side_by_side(on)
        self._draw_lanes()

    def _set_side_by_side(self, on: bool) -> None:
        self.side_by_side = on
        wanted = max(1, len(self.shown_detectors()))
        while len(self.panels) < wanted:
            self._add_panel()
        for index, panel in enumerate(self.panels):
            panel.attach(index < wanted)

    def _add_panel(self) -> Panel:
        """One more column, in the state the others are in: linked to the first, with the spectrogram, the
        playhead and the drawing mode."""
        panel = Panel(self.graphics.ci, len(self.panels), self)
        panel.view_box.drawn.connect(self._drawn)
        self.panels.append(panel)
        if len(self.panels) > 1:
            main = self.panels[0].plot
            panel.plot.setXLink(main)
            panel.plot.setYLink(main)
            panel.view_box.drawing = self.label_mode
            panel.set_tile(0, self.overview, self.settings)
            panel.set_tile(1, self.detail, self.settings)
            for line in panel.playheads:
                line.setValue(self.playhead_s)
                line.setVisible(self._visible["playhead"])
            panel.lane.setMaximumHeight(self.panels[0].lane.maximumHeight())
            self._draw_regions()
        return panel

    def shown_detectors(self) -> tuple[str, ...]:
        """The detectors on screen, one per column: side by side all chosen, else the first."""
        return self.detectors if self.side_by_side else self.detectors[:1]

    def shown_panels(self) -> list[Panel]:
        """The columns on screen: the first, and side by side one per chosen detector."""
        return [panel for panel in self.panels if panel.attached]

    def normalised_scale(self) -> bool:
        """Whether the columns show normalised scores: side by side with more than one column."""
        return len(self.shown_detectors()) > 1

    def _draw_lanes(self) -> None:
        display = self.display
        detectors = self.shown_detectors()
        normalised = self.normalised_scale()
        for index, panel in enumerate(self.panels):
            detector = detectors[index] if index < len(detectors) else ""
            shown = None
            if display is not None and detector:
                # A model without normalisation statistics (a classifier, an old model) stays on its own scale.
                shown = (display.normalised.get(detector) if normalised else None) or display.lanes.get(detector)
            on_scale = normalised and display is not None and shown is display.normalised.get(detector)
            panel.set_lanes(detector, shown, self.mel_range(), self.settings, on_scale)
            panel.map_image.setOpacity(self._opacity["map"])
            panel.lane.setVisible(self._visible["lane"] and panel.attached)
        if normalised:  # one score axis for every lane on the normalised scale: they compare at a glance
            extents = [p.lane_extent() for p in self.shown_panels() if p.normalised and p.lane_extent()]
            if extents:
                low, high = min(e[0] for e in extents), max(e[1] for e in extents)
                for panel in self.shown_panels():
                    if panel.normalised:
                        panel.lane.setYRange(low, high, padding=0.08)
        # Columns whose titles got shorter give the room back (pyqtgraph fits its layout to the view only
        # when the view is resized).
        self.graphics.ci.setGeometry(self.graphics.range)
