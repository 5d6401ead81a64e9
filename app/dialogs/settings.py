"""The settings dialog: where to compute (auto / cpu / cuda), the AST and BEATs weights, and how the
spectrogram is drawn. Weights are checked by loading them on the engine thread before they are kept."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings import SpectrogramSettings
from app.views.overlays import MAP_COLOUR_MAPS, SPECTROGRAM_MAPS
from engine import weights


class WeightsRow(QWidget):
    save_requested = Signal(str, str)  # name, path

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        configured = weights.configured().get(name, "")
        self.path = QLineEdit(configured, placeholderText="not set up")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.save = QPushButton("Check and use")
        self.save.clicked.connect(lambda: self.save_requested.emit(name, self.path.text().strip()))
        self.status = QLabel("set up" if configured else weights.KINDS[name].where)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #555")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        row.addWidget(self.save)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    def _browse(self) -> None:
        if self.name == "beats":
            path, _ = QFileDialog.getOpenFileName(self, "BEATs checkpoint", "", "Checkpoints (*.pt);;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "AST model folder (config.json + weights)")
        if path:
            self.path.setText(path)

    def report(self, ok: bool, text: str) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #2e7d32" if ok else "color: #c62828")
        self.save.setEnabled(True)


class SettingsDialog(QDialog):
    weights_requested = Signal(str, str)

    def __init__(
        self, device: str, spectrogram: SpectrogramSettings, cuda_available: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        if not cuda_available:
            self.device.model().item(2).setEnabled(False)
            self.device.setToolTip("no CUDA GPU found on this machine")
        self.device.setCurrentText(device)
        compute = QGroupBox("Compute")
        QFormLayout(compute).addRow("Device", self.device)

        self.weights = {name: WeightsRow(name) for name in weights.KINDS}
        weights_box = QGroupBox("Pretrained weights (never downloaded by Earmark)")
        form = QFormLayout(weights_box)
        for name, row in self.weights.items():
            row.save_requested.connect(self._save_weights)
            form.addRow(name.upper(), row)

        s = spectrogram
        self.n_fft = _spin(256, 8192, s.n_fft)
        self.hop = _spin(32, 4096, s.hop_length)
        self.n_mels = _spin(16, 256, s.n_mels)
        self.db_floor = _dspin(-160, 0, s.db_floor)
        self.db_ceiling = _dspin(-120, 40, s.db_ceiling)
        self.colour_map = QComboBox()
        self.colour_map.addItems(SPECTROGRAM_MAPS)
        self.colour_map.setCurrentText(s.colour_map)
        self.map_colour_map = QComboBox()
        self.map_colour_map.addItems(MAP_COLOUR_MAPS)
        self.map_colour_map.setCurrentText(s.map_colour_map)
        look = QGroupBox("Spectrogram")
        form = QFormLayout(look)
        for label, widget in (
            ("FFT size", self.n_fft),
            ("Hop (samples)", self.hop),
            ("Mel bands", self.n_mels),
            ("dB floor", self.db_floor),
            ("dB ceiling", self.db_ceiling),
            ("Colour map", self.colour_map),
            ("Anomaly map colours", self.map_colour_map),
        ):
            form.addRow(label, widget)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (compute, weights_box, look, buttons):
            layout.addWidget(widget)

    def _save_weights(self, name: str, path: str) -> None:
        if not path:
            self.weights[name].report(False, "choose a folder (AST) or a .pt file (BEATs) first")
            return
        self.weights[name].save.setEnabled(False)
        self.weights[name].report(True, "checking ...")
        self.weights_requested.emit(name, path)

    def chosen_spectrogram(self) -> SpectrogramSettings:
        floor, ceiling = self.db_floor.value(), self.db_ceiling.value()
        if ceiling <= floor:
            ceiling = floor + 10
        return SpectrogramSettings(
            self.n_fft.value(),
            self.hop.value(),
            self.n_mels.value(),
            floor,
            ceiling,
            self.colour_map.currentText(),
            self.map_colour_map.currentText(),
        )


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _dspin(low: float, high: float, value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(5)
    box.setValue(value)
    return box
