"""The proposals dock: which detector proposes regions, its on and off levels (multiples of the model's
own frame threshold, so one setting suits every model group), the minimum duration and the merge gap,
each a slider with a number box; and the review queue's settings (what N visits, and whether it plays).

Moving a slider re-proposes the shown clip at once; "Propose on all clips" runs on the engine thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

REVIEW_MODES = {
    "proposals": "pending proposals",
    "flagged": "clips the detector flags",
    "unlabelled": "clips without labels",
}


@dataclass(frozen=True)
class ProposalChoice:
    detector: str
    on_ratio: float
    off_ratio: float
    min_duration_s: float
    merge_gap_s: float


class SliderBox(QWidget):
    """A slider and a number box showing one value; either can be dragged or typed."""

    changed = Signal(float)

    def __init__(self, low: float, high: float, step: float, value: float, suffix: str = "", name: str = "") -> None:
        super().__init__()
        self.step = step
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(low / step), round(high / step))
        self.box = QDoubleSpinBox(objectName=name)
        self.box.setRange(low, high)
        self.box.setSingleStep(step)
        self.box.setDecimals(max(0, len(f"{step:g}".split(".")[-1]) if "." in f"{step:g}" else 0))
        self.box.setSuffix(suffix)
        self.box.setKeyboardTracking(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.box)
        self.set_value(value)
        self.slider.valueChanged.connect(lambda v: self._set(v * self.step))
        self.box.valueChanged.connect(self._set)

    def value(self) -> float:
        return self.box.value()

    def set_value(self, value: float) -> None:
        for widget, v in ((self.slider, round(value / self.step)), (self.box, value)):
            widget.blockSignals(True)
            widget.setValue(v)
            widget.blockSignals(False)

    def _set(self, value: float) -> None:
        self.set_value(value)
        self.changed.emit(value)


class ProposalPanel(QWidget):
    settings_changed = Signal()  # re-propose the shown clip
    propose_clip_requested = Signal()
    propose_all_requested = Signal()
    accept_all_requested = Signal()

    def __init__(self, defaults: ProposalChoice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detector = QComboBox(objectName="proposal_detector")
        self.detector.currentTextChanged.connect(lambda _: self.settings_changed.emit())
        self.detector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.detector.setMinimumContentsLength(12)
        self.on = SliderBox(0.2, 3.0, 0.05, defaults.on_ratio, " x", "proposal_on")
        self.off = SliderBox(0.1, 3.0, 0.05, defaults.off_ratio, " x", "proposal_off")
        self.min_duration = SliderBox(0.0, 3.0, 0.05, defaults.min_duration_s, " s", "proposal_min_duration")
        self.merge_gap = SliderBox(0.0, 3.0, 0.05, defaults.merge_gap_s, " s", "proposal_merge_gap")
        for box in (self.on, self.off, self.min_duration, self.merge_gap):
            box.changed.connect(self._changed)
        self.on.setToolTip("A region opens where the frame score reaches this multiple of the model's threshold")
        self.off.setToolTip("... and closes where it falls below this multiple (hysteresis)")
        self.review_mode = QComboBox(objectName="review_mode")
        for key, text in REVIEW_MODES.items():
            self.review_mode.addItem(text, key)
        self.play_on_arrival = QCheckBox("play on arrival", objectName="play_on_arrival")
        buttons = QGridLayout()  # two rows, so the dock fits beside the spectrogram on a laptop
        for place, (text, signal, name) in enumerate(
            (
                ("Propose (P)", self.propose_clip_requested, "propose_clip"),
                ("Accept all (Shift+A)", self.accept_all_requested, "accept_all"),
                ("Propose on all clips", self.propose_all_requested, "propose_all"),
            )
        ):
            button = QPushButton(text, objectName=name)
            button.clicked.connect(signal.emit)
            buttons.addWidget(button, place // 2, place % 2)
        form = QFormLayout()
        form.addRow("Detector", self.detector)
        form.addRow("On level", self.on)
        form.addRow("Off level", self.off)
        form.addRow("Min duration", self.min_duration)
        form.addRow("Merge gap", self.merge_gap)
        form.addRow("N visits", self.review_mode)
        form.addRow("", self.play_on_arrival)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def set_detectors(self, detectors: list[str], preferred: str | None) -> None:
        current = self.detector.currentText() or preferred
        self.detector.blockSignals(True)
        self.detector.clear()
        self.detector.addItems(detectors)
        if current in detectors:
            self.detector.setCurrentText(current)
        self.detector.blockSignals(False)

    def choice(self) -> ProposalChoice | None:
        detector = self.detector.currentText()
        if not detector:
            return None
        return ProposalChoice(
            detector,
            self.on.value(),
            min(self.off.value(), self.on.value()),
            self.min_duration.value(),
            self.merge_gap.value(),
        )

    def mode(self) -> str:
        return self.review_mode.currentData()

    def _changed(self, _value: float) -> None:
        if self.off.value() > self.on.value():  # hysteresis needs off <= on: follow the one dragged
            (self.off if self.sender() is self.on else self.on).set_value(
                self.on.value() if self.sender() is self.on else self.off.value()
            )
        self.settings_changed.emit()
