"""Help > Keyboard shortcuts, built from the window's own actions so it can never disagree with them."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget


class ShortcutsDialog(QDialog):
    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = [
            (
                a.text().replace("&", ""),
                ", ".join(
                    key
                    for s in a.shortcuts()  # a standard key may be unbound
                    if (key := s.toString(QKeySequence.SequenceFormat.NativeText))
                ),
            )
            for a in actions
            if a.shortcuts()
        ]
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["action", "keys"])
        for i, (text, keys) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(text))
            table.setItem(i, 1, QTableWidgetItem(keys))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().setVisible(False)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(520, 720)
