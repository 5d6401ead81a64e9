"""Train > Fit detector...: which detector, on which group (or all), with which settings, and whether to resume
its interrupted training."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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

ALL_GROUPS = "every group"


class FitDialog(QDialog):
    """`resumable(detector)` says whether the project holds the checkpoints of an interrupted training of that
    detector (one that trains in epochs): only then can Resume be ticked."""

    def __init__(
        self,
        detectors: Sequence[str],
        groups: Sequence[str],
        parent: QWidget | None = None,
        resumable: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.resumable = resumable or (lambda key: False)
        self.setWindowTitle("Fit detector")
        self.detector = QComboBox()
        self.detector.addItems(list(detectors))
        self.group = QComboBox()
        self.group.addItems([ALL_GROUPS, *groups])
        self.settings = QPlainTextEdit(placeholderText="one setting per line, e.g.\nk=5\nepochs=50")
        self.settings.setMaximumHeight(90)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.resume = QCheckBox("Resume the interrupted training from its checkpoints")
        self.resume.setToolTip(
            "Groups whose training a cancel or a crash stopped go on at the next epoch; groups that finished are "
            "taken from their last checkpoint; the others train afresh"
        )
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828")
        self.detector.currentTextChanged.connect(self._describe)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Detector", self.detector)
        form.addRow("", self.about)
        form.addRow("Group", self.group)
        form.addRow("Settings", self.settings)
        form.addRow("", self.resume)
        form.addRow(self.error)
        form.addRow(buttons)
        self._describe(self.detector.currentText())

    def _describe(self, key: str) -> None:
        # Imported when used: the registry imports every detector (torch), which would slow the window's start.
        from engine.detectors.registry import detector_class

        if key:
            klass = detector_class(key)
            fields = ", ".join(f"{name}={value}" for name, value in vars(klass.Config()).items())
            self.about.setText(f"{klass.title or key}. Settings: {fields}")
        can = bool(key) and self.resumable(key)
        self.resume.setEnabled(can)
        if not can:
            self.resume.setChecked(False)

    def chosen(self) -> tuple[str, str | None, dict]:
        from engine.detectors.registry import parse_settings

        lines = [line.strip() for line in self.settings.toPlainText().splitlines() if line.strip()]
        group = self.group.currentText()
        return self.detector.currentText(), None if group == ALL_GROUPS else group, parse_settings(lines)

    def _accept(self) -> None:
        from engine.detectors.registry import make_config

        try:
            detector, _, settings = self.chosen()
            make_config(detector, settings)  # a wrong name or value is reported here, not after queueing
        except EarmarkError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
