"""The strip above the spectrogram: which detector's map and lane are shown (and, side by side, which other
detectors stand beside it, each in its own column), and each overlay's visibility and opacity.

The strip is a tool bar: on a narrow window (a laptop) what does not fit goes behind its >> button instead of
making the whole window wider."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QMenu, QSlider, QToolBar, QToolButton, QWidget

from app.views.overlays import OVERLAY_TITLES, OVERLAYS

#: Side by side starts with the first detector and up to this many others, until the user picks.
DEFAULT_OTHERS = 2


class OverlayControls(QWidget):
    detectors_changed = Signal(list, bool)  # the columns' detectors (the first column's first), side by side
    overlay_changed = Signal(str, bool, float)  # name, visible, opacity

    def __init__(self, opacity: dict[str, float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.first = QComboBox(toolTip="Detector whose anomaly map and frame lane are shown")
        self.first.setMinimumContentsLength(10)
        self.first.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.first.currentTextChanged.connect(self._first_changed)
        self.side_by_side = QCheckBox("side by side")
        self.side_by_side.setToolTip(
            "Show other detectors' maps on the same clip, one column each, on the normalised scale (V)"
        )
        self.side_by_side.toggled.connect(self._detectors)
        # The other columns: one checkable entry per fitted detector besides the first.
        self.others = QToolButton(text="with ...", objectName="side_by_side_detectors")
        self.others.setToolTip("The detectors shown beside the first one, in columns of their own")
        self.others.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.others_menu = QMenu(self.others)
        self.others.setMenu(self.others_menu)
        self.compare: dict[str, QAction] = {}
        self.detectors: list[str] = []
        self._shown_first = ""
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
        self.strip.addWidget(_group(self.side_by_side, self.others))
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
        self.others.setEnabled(False)

    def restore(self, choice: Sequence[str], side_by_side: bool) -> None:
        """The choice saved last time: used once the project's detectors are known."""
        self.remembered = tuple(choice)
        self.side_by_side.setChecked(side_by_side)

    def set_detectors(self, detectors: Sequence[str], preferred: str | None = None) -> None:
        """Fill in the fitted detectors, keeping the current choice where it is still fitted, else the
        remembered one, else `preferred` first and up to `DEFAULT_OTHERS` other detectors beside it (the
        ensemble after the single detectors, which it fuses)."""
        self.detectors = list(detectors)
        wanted = self.choice() if self.first.currentText() else list(self.remembered)
        chosen = [d for d in dict.fromkeys(wanted) if d in self.detectors]
        if not chosen:
            first = preferred if preferred in self.detectors else (self.detectors[0] if self.detectors else "")
            others = sorted((d for d in self.detectors if d != first), key=lambda d: d == "ensemble")
            chosen = [first, *others[:DEFAULT_OTHERS]] if first else []
        self.first.blockSignals(True)
        self.first.clear()
        self.first.addItems(self.detectors)
        self.first.setCurrentText(chosen[0] if chosen else "")
        self.first.blockSignals(False)
        self._shown_first = self.first.currentText()
        self._fill_others(chosen[1:])
        self._detectors()

    def choose(self, detectors: Sequence[str]) -> None:
        """Show these detectors (fitted ones; each once), the first in the first column."""
        chosen = [d for d in dict.fromkeys(detectors) if d in self.detectors]
        if chosen:
            self.first.blockSignals(True)
            self.first.setCurrentText(chosen[0])
            self.first.blockSignals(False)
            self._shown_first = chosen[0]
            self._fill_others(chosen[1:])
            self._detectors()

    def choice(self) -> list[str]:
        """The columns' detectors, the first column's first; side by side shows them all, else the first only."""
        first = self.first.currentText()
        others = [d for d, action in self.compare.items() if action.isChecked() and d != first]
        return ([first] if first else []) + others

    def next_detector(self) -> None:
        """The first column shows the next fitted detector (D); one that stood beside it changes places with the
        one that was first, so no detector is ever shown twice."""
        if self.first.count():
            self.first.setCurrentIndex((self.first.currentIndex() + 1) % self.first.count())

    def _first_changed(self, first: str) -> None:
        before, self._shown_first = self._shown_first, first
        others = [d for d, action in self.compare.items() if action.isChecked()]
        if before and first in others:
            others = [before if d == first else d for d in others]  # they change places
        self._fill_others(others)
        self._detectors()

    def _fill_others(self, checked: Sequence[str]) -> None:
        """One checkable entry per fitted detector other than the first; `checked` are ticked (in the order
        of the detectors)."""
        first = self.first.currentText()
        self.others_menu.clear()
        self.compare = {}
        for detector in self.detectors:
            if detector == first:
                continue
            action = self.others_menu.addAction(detector)
            action.setCheckable(True)
            action.setChecked(detector in checked)
            action.toggled.connect(self._detectors)
            self.compare[detector] = action
        self.others.setEnabled(self.side_by_side.isChecked() and bool(self.compare))

    def _detectors(self, *_: object) -> None:
        chosen = self.choice()
        self.others.setEnabled(self.side_by_side.isChecked() and bool(self.compare))
        self.others.setText("with " + (", ".join(chosen[1:]) if chosen[1:] else "..."))
        self.detectors_changed.emit(chosen, self.side_by_side.isChecked())

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
