"""The strip above the spectrogram: which detector's map and lane are shown (and a second one side by
side), and each overlay's visibility and opacity.

The strip is a tool bar: on a narrow window (a laptop) what does not fit goes behind its >> button instead of
making the whole window wider."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QToolBar, QWidget

from app.views.overlays import OVERLAY_TITLES, OVERLAYS


class OverlayControls(QWidget):
    detectors_changed = Signal(str, str, bool)    # first, second, side by side
    overlay_changed = Signal(str, bool, float)    # name, visible, opacity

    def __init__(self, opacity: dict[str, float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.first = QComboBox(toolTip="Detector whose anomaly map and frame lane are shown")
        self.second = QComboBox(toolTip="Detector shown in the second column")
        self.side_by_side = QCheckBox("side by side")
        self.side_by_side.setToolTip("Show a second detector's map on the same clip (V)")
        for widget in (self.first, self.second):
            widget.setMinimumContentsLength(10)
            widget.currentTextChanged.connect(self._detectors)
        self.side_by_side.toggled.connect(self._detectors)
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self.strip = QToolBar(objectName="overlay_strip")
        self.strip.setIconSize(QSize(12, 12))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.strip, 1)
        self.strip.addWidget(_group(QLabel("Detector"), self.first))
        self.strip.addWidget(_group(self.side_by_side, self.second))
        self.strip.addSeparator()
        for name in OVERLAYS:
            check = QCheckBox(OVERLAY_TITLES[name].split()[0] if name != "lane" else "Lane", checked=True)
            check.setToolTip(f"Show the {OVERLAY_TITLES[name].lower()}")
            slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=round(100 * opacity[name]))
            slider.setFixedWidth(56)
            slider.setToolTip(f"Opacity of the {OVERLAY_TITLES[name].lower()}")
            check.toggled.connect(lambda _=False, n=name: self._overlay(n))
            slider.valueChanged.connect(lambda _=0, n=name: self._overlay(n))
            self.checks[name], self.sliders[name] = check, slider
            self.strip.addWidget(_group(check, slider))  # a check box and its slider never part in the overflow
        self.second.setEnabled(False)

    def set_detectors(self, detectors: Sequence[str], preferred: str | None = None) -> None:
        current = self.first.currentText() or preferred
        second = self.second.currentText()
        for box in (self.first, self.second):
            box.blockSignals(True)
            box.clear()
            box.addItems(list(detectors))
        if current in detectors:
            self.first.setCurrentText(current)
        others = [d for d in detectors if d != self.first.currentText()]
        self.second.setCurrentText(second if second in detectors else (others[0] if others else ""))
        for box in (self.first, self.second):
            box.blockSignals(False)
        self._detectors()

    def _detectors(self, *_: object) -> None:
        self.second.setEnabled(self.side_by_side.isChecked())
        self.detectors_changed.emit(self.first.currentText(), self.second.currentText(),
                                    self.side_by_side.isChecked())

    def _overlay(self, name: str) -> None:
        self.overlay_changed.emit(name, self.checks[name].isChecked(), self.sliders[name].value() / 100)

    def toggle(self, name: str) -> None:
        self.checks[name].toggle()


def _group(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 6, 0)
    layout.setSpacing(3)
    for widget in widgets:
        layout.addWidget(widget)
    return box
