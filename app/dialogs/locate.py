"""File > Locate missing recordings...: the clips whose files are gone, and the folder they moved to.

The search itself (by file name, preferring the same sub-folders, every checksum checked) runs as an engine
job (`app.jobs.locate_missing`); this dialog only lists what is missing and takes the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.data.clip import Clip


class LocateMissingDialog(QDialog):
    def __init__(self, missing: Sequence[Clip], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Locate missing recordings")
        self.missing = list(missing)
        intro = QLabel(
            f"{len(self.missing)} clip(s) point at files that no longer exist. Choose the folder "
            "they were moved to: each is looked for there by file name, and re-pointed only if its "
            "content (checksum) is unchanged."
        )
        intro.setWordWrap(True)
        self.table = QTableWidget(len(self.missing), 2)
        self.table.setHorizontalHeaderLabels(["clip", "was at"])
        for row, clip in enumerate(self.missing):
            self.table.setItem(row, 0, QTableWidgetItem(clip.clip_id))
            self.table.setItem(row, 1, QTableWidgetItem(clip.path))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.folder = QLineEdit(self._guess())
        self.folder.setPlaceholderText("folder to search (its sub-folders too)")
        browse = QPushButton("Choose folder...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Search and re-point")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.folder.textChanged.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.buttons)
        self._update()
        self.resize(760, 420)

    def chosen_folder(self) -> str:
        return self.folder.text().strip()

    def _guess(self) -> str:
        """The nearest folder above the missing files that still exists: where a search usually starts."""
        if not self.missing:
            return ""
        for parent in Path(self.missing[0].path).parents:
            if parent.is_dir() and parent != Path(parent.anchor):
                return str(parent)
        return ""

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder the recordings were moved to", self.chosen_folder())
        if folder:
            self.folder.setText(folder)

    def _update(self) -> None:
        folder = self.chosen_folder()
        ok = bool(self.missing and folder and Path(folder).is_dir())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)
