"""Train > Train leak classifier... / Train sound classifier...: the mode, resume or not, and settings."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QWidget,
)

from engine.errors import EarmarkError

LEAK_MODES = ("binary", "multiclass", "both")


class TrainDialog(QDialog):
    """`kind` is "leak" (from the labelled regions) or "sound" (from the clips' classes)."""

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setWindowTitle("Train leak classifier" if kind == "leak" else "Train sound classifier")
        self.mode = QComboBox()
        self.mode.addItems(LEAK_MODES)
        self.resume = QCheckBox("Resume the last run from its checkpoint")
        self.settings = QPlainTextEdit(placeholderText="one setting per line, e.g.\nepochs=50\npatience=10")
        self.settings.setMaximumHeight(90)
        about = QLabel(self._about())
        about.setWordWrap(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(about)
        if kind == "leak":
            form.addRow("Mode", self.mode)
        form.addRow("", self.resume)
        form.addRow("Settings", self.settings)
        form.addRow(self.error)
        form.addRow(buttons)

    def _about(self) -> str:
        if self.kind == "leak":
            from engine.classifiers.leak import LeakConfig

            head = (
                "Trains on the labelled regions (LEAK, NORMAL, QUIET, RANDOM, MECHANICAL), picks the epoch "
                "with the best file-level leak F1, then scores every clip: the leak probability becomes a "
                "lane and proposals. Binary: LEAK / NOLEAK; multiclass: five classes; both: one after the "
                "other."
            )
            fields = dataclasses.asdict(LeakConfig())
        else:
            from engine.classifiers.sound import SoundConfig

            head = (
                "Trains on every clip with a class (ESC-50, EmoDB, folder names) with augmented variants "
                "kept with their clip, over several seeds; results under Train > Classifier results."
            )
            fields = dataclasses.asdict(SoundConfig())
        shown = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in fields.items() if k != "mode"
        )
        return f"{head}\nSettings: {shown}"

    def chosen(self) -> tuple[list[str], dict, bool]:
        # Imported when used: the registry imports every detector (torch), which would slow the window's start.
        from engine.detectors.registry import parse_settings

        lines = [line.strip() for line in self.settings.toPlainText().splitlines() if line.strip()]
        return [self.mode.currentText()], parse_settings(lines), self.resume.isChecked()

    def _accept(self) -> None:
        try:
            _, settings, _ = self.chosen()
            if self.kind == "leak":
                from engine.classifiers.leak import leak_config

                leak_config("binary", settings)  # a wrong name or value is reported here, not after queueing
            else:
                from engine.classifiers.sound import sound_config

                sound_config(settings)
        except EarmarkError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
