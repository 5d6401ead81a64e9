"""The strip above the spectrogram: which detector's map and lane are shown (and, side by side, up to two
more), and each overlay's visibility and opacity.

The strip is a tool bar: on a narrow window (a laptop) what does not fit goes behind its >> button instead of
making the whole window wider."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QToolBar, QWidget

from app.views.overlays import OVERLAY_TITLES, OVERLAYS

#: The third column's choice that shows no third column.
NO_DETECTOR = "none"


class OverlayControls(QWidget):
    detectors_changed = Signal(str, str, str, bool)  # first, second, third ("" for none), side by side
    overlay_changed = Signal(str, bool, float)  # name, visible, opacity

    def __init__(self, opacity: dict[str, float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.first = QComboBox(toolTip="Detector whose anomaly map and frame lane are shown")
        self.second = QComboBox(toolTip="Detector shown in the second column")
        self.third = QComboBox(toolTip="Detector shown in the third column (none: two columns)")
        self.side_by_side = QCheckBox("side by side")
        self.side_by_side.setToolTip("Show other detectors' maps on the same clip, up to three columns (V)")
        self.boxes = (self.first, self.second, self.third)
        for widget in self.boxes:
            widget.setMinimumContentsLength(10)
            widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            widget.currentTextChanged.connect(self._detectors)
        self.side_by_side.toggled.connect(self._detectors)
        #: The choice to come back to when the detectors are (re)filled: the user's last, kept in settings.
        self.remembered: tuple[str, ...] = ()
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self.strip = QToolBar(objectName="overlay_strip")
        self.strip.setIconSize(QSize(12, 12))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.strip, 1)
        self.strip.addWidget(_group(QLabel("Detector"), self.first))
        self.strip.addWidget(_group(self.side_by_side, self.second, self.third))
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
        self.third.setEnabled(False)

    def restore(self, choice: Sequence[str], side_by_side: bool) -> None:
        """The choice saved last time: used once the project's detectors are known."""
        self.remembered = tuple(choice)
        self.side_by_side.setChecked(side_by_side)

    def set_detectors(self, detectors: Sequence[str], preferred: str | None = None) -> None:
        """Fill the boxes with the fitted detectors, keeping the current choice where it is still fitted, else
        the remembered one, else `preferred` first and then two other detectors (a different one per
        column while there are enough; the ensemble after the single detectors)."""
        detectors = list(detectors)
        remembered = list(self.remembered) + [""] * (3 - len(self.remembered))
        wanted = [box.currentText() or remembered[index] for index, box in enumerate(self.boxes)]
        wanted[0] = wanted[0] if wanted[0] in detectors else preferred
        chosen: list[str] = []
        for index, name in enumerate(wanted):
            if (name in detectors and name not in chosen) or (index == 2 and name == NO_DETECTOR):
                chosen.append(name)
            else:
                # the single detectors before the ensemble, which fuses them: its own map is one of three
                others = sorted((d for d in detectors if d not in chosen), key=lambda d: d == "ensemble")
                chosen.append(others[0] if others else (NO_DETECTOR if index == 2 else ""))
        for box, choice in zip(self.boxes, chosen, strict=True):
            box.blockSignals(True)
            box.clear()
            box.addItems(detectors + ([NO_DETECTOR] if box is self.third else []))
            if choice:
                box.setCurrentText(choice)
            else:  # nothing left to show there (a project with one detector): no column, not the first again
                box.setCurrentIndex(-1)
            box.blockSignals(False)
        self._detectors()

    def choice(self) -> tuple[str, str, str]:
        """The three columns' detectors ("" where none is chosen)."""
        third = self.third.currentText()
        return self.first.currentText(), self.second.currentText(), "" if third == NO_DETECTOR else third

    def _detectors(self, *_: object) -> None:
        for box in (self.second, self.third):
            box.setEnabled(self.side_by_side.isChecked())
        self.detectors_changed.emit(*self.choice(), self.side_by_side.isChecked())

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
