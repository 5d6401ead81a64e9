"""Labels > Label classes...: add, rename, recolour, reorder and remove the project's label classes.

Each change is written to the project at once through `engine.store.labels` (one transaction each), the list
is redrawn with the same class still selected, and `classes_changed` tells the main window to redraw. A change
the store refuses (no name, a name already taken, removing a class that regions still carry) is explained in
a red line inside the dialog and nothing is changed. The first nine classes, in order, are the keys 1-9.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.store import Project, labels
from engine.store.health import database_error
from engine.store.labels import LabelError

COLUMNS = ("Colour", "Key", "Name", "Regions")
SWATCH, KEY, NAME, COUNT = range(len(COLUMNS))


class LabelClassesDialog(QDialog):
    classes_changed = Signal()
    class_renamed = Signal(str, str)  # old name, new name
    class_removed = Signal(str)

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("label_classes")
        self.setWindowTitle("Label classes")
        self.project = project
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for column in (SWATCH, KEY, COUNT):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(lambda row, column: self._rename_clicked())
        self.table.installEventFilter(self)

        self.add_button = QPushButton("Add...")
        self.rename_button = QPushButton("Rename...")
        self.colour_button = QPushButton("Colour...")
        self.up_button = QPushButton("Move up")
        self.down_button = QPushButton("Move down")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add_clicked)
        self.rename_button.clicked.connect(self._rename_clicked)
        self.colour_button.clicked.connect(self._colour_clicked)
        self.up_button.clicked.connect(lambda: self._move_selected(-1))
        self.down_button.clicked.connect(lambda: self._move_selected(1))
        self.remove_button.clicked.connect(self._remove_clicked)
        side = QVBoxLayout()
        for button in (
            self.add_button,
            self.rename_button,
            self.colour_button,
            self.up_button,
            self.down_button,
            self.remove_button,
        ):
            button.setAutoDefault(False)
            side.addWidget(button)
        side.addStretch(1)

        self.error = QLabel()
        self.error.setObjectName("class_error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        self.close_button.setAutoDefault(False)

        row = QHBoxLayout()
        row.addWidget(self.table, 1)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(460, 320)
        self.refresh()
        if self.table.rowCount():
            self.table.selectRow(0)

    # -- the list ---------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [self.table.item(row, NAME).text() for row in range(self.table.rowCount())]

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), NAME).text() if rows else None

    def select(self, name: str | None) -> None:
        names = self.names()
        if name in names:
            self.table.selectRow(names.index(name))
        else:
            self.table.clearSelection()

    def refresh(self, select: str | None = None) -> None:
        """Redraw from the project, selecting `select` (or the class selected before)."""
        keep = select if select is not None else self.selected_name()
        counts = labels.label_counts(self.project)
        classes = self.project.label_classes()
        self.table.blockSignals(True)
        self.table.setRowCount(len(classes))
        for row, cls in enumerate(classes):
            swatch = QPixmap(16, 16)
            swatch.fill(QColor(cls.colour))
            cells = (
                QTableWidgetItem(QIcon(swatch), ""),
                QTableWidgetItem(cls.shortcut or ""),
                QTableWidgetItem(cls.name),
                QTableWidgetItem(str(counts.get(cls.name, 0))),
            )
            cells[SWATCH].setData(Qt.ItemDataRole.UserRole, cls.colour)
            cells[SWATCH].setToolTip(cls.colour)
            for column in (KEY, COUNT):
                cells[column].setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            for column, item in enumerate(cells):
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        self.select(keep)
        self._update_buttons()

    def _update_buttons(self) -> None:
        name = self.selected_name()
        names = self.names()
        for button in (self.rename_button, self.colour_button, self.remove_button):
            button.setEnabled(name is not None)
        self.up_button.setEnabled(name is not None and names.index(name) > 0)
        self.down_button.setEnabled(name is not None and names.index(name) < len(names) - 1)

    # -- the changes (shared by the buttons, the keys and tests) ----------------------------------------------
    def add_class(self, name: str, colour: str | None = None) -> bool:
        return self._change(lambda: labels.add_label_class(self.project, name, colour).name)

    def rename_class(self, old: str, new: str) -> bool:
        if new.strip() == old:
            self._show_error("")
            return True
        renamed = self._change(lambda: labels.rename_label_class(self.project, old, new).name)
        if renamed:
            self.class_renamed.emit(old, new.strip())
        return renamed

    def recolour_class(self, name: str, colour: str) -> bool:
        chosen = QColor(colour)
        if not chosen.isValid():
            self._show_error(f"{colour!r} is not a colour; use #rrggbb")
            return False
        return self._change(lambda: labels.recolour_label_class(self.project, name, chosen.name()).name)

    def move_class(self, name: str, step: int) -> bool:
        names = [c.name for c in self.project.label_classes()]  # as stored, not as drawn
        if name not in names:
            self._show_error(f"there is no label class {name!r}")
            return False
        position = names.index(name) + step
        if not 0 <= position < len(names):
            return False  # already first (or last): nothing to do

        def move() -> str:
            labels.move_label_class(self.project, name, position)
            return name

        return self._change(move)

    def remove_class(self, name: str) -> bool:
        names = [c.name for c in self.project.label_classes()]
        row = names.index(name) if name in names else 0
        rest = [n for n in names if n != name]

        def remove() -> str | None:  # the class below takes the selection (or the one above, at the end)
            labels.remove_label_class(self.project, name)
            return rest[min(row, len(rest) - 1)] if rest else None

        removed = self._change(remove)
        if removed:
            self.class_removed.emit(name)
        return removed

    def _change(self, work: Callable[[], str | None]) -> bool:
        """Run one store change; on success redraw selecting the class `work` returns and tell the window."""
        try:
            selected = work()
        except LabelError as exc:
            self._show_error(str(exc))
            return False
        except sqlite3.DatabaseError as exc:  # damaged, or a full disk: the one message, the dialog goes on
            self._show_error(str(database_error(self.project.folder, exc)))
            return False
        self._show_error("")
        self.refresh(select=selected)
        self.classes_changed.emit()
        return True

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    # -- buttons and keys -------------------------------------------------------------------------------------
    def _add_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Add label class", "Name of the new class:")
        if ok:
            self.add_class(name)

    def _rename_clicked(self) -> None:
        old = self.selected_name()
        if old is None:
            return
        new, ok = QInputDialog.getText(
            self, "Rename label class", f"New name for {old!r}:", QLineEdit.EchoMode.Normal, old
        )
        if ok:
            self.rename_class(old, new)

    def _colour_clicked(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        current = self.table.item(self.names().index(name), SWATCH).data(Qt.ItemDataRole.UserRole)
        chosen = QColorDialog.getColor(QColor(current), self, f"Colour of {name}")
        if chosen.isValid():
            self.recolour_class(name, chosen.name())

    def _move_selected(self, step: int) -> None:
        name = self.selected_name()
        if name is not None:
            self.move_class(name, step)

    def _remove_clicked(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.remove_class(name)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress:
            key, mods = event.key(), event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if key == Qt.Key.Key_Delete and mods == Qt.KeyboardModifier.NoModifier:
                self._remove_clicked()
                return True
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and mods == Qt.KeyboardModifier.ControlModifier:
                self._move_selected(-1 if key == Qt.Key.Key_Up else 1)
                return True
        return super().eventFilter(watched, event)
