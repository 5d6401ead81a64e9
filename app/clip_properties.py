"""Clip properties: say what the clips selected in the table are (machine, section, domain, split, label), from
a dock or the table's context menu, and "Use as normal training clips" in one step.

Each change is one command on the window's undo stack (Ctrl+Z / Ctrl+Shift+Z) and is written to the project
at once through `engine.store.clip_fields`, on the GUI thread with the window's own connection (as label
edits are). Models fitted on clips that changed are stale until refitted: the tree and the table say so.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import clip_data
from app.views.clip_columns import ClipColumns
from app.views.clip_table import FIXED
from engine.data.clip import DOMAINS, LABELS, SPLITS
from engine.errors import EarmarkError
from engine.store.clip_fields import (
    FIELDS,
    FieldChange,
    current_fields,
    normalise_values,
    restore_fields,
    set_fields,
    stale_models,
)
from engine.store.health import database_error

if TYPE_CHECKING:
    from app.main_window import MainWindow

KEEP = "(keep)"
NONE = "(none)"
CHOICES = {"domain": DOMAINS, "split": SPLITS, "label": LABELS}
NORMAL_TRAINING = {"split": "train", "label": "normal"}
#: Up to this many changed clips, their rows are updated in place; more, and the table is read again at once.
IN_PLACE = 300


def describe(values: Mapping[str, str | None]) -> str:
    return ", ".join(f"{name}={value or 'none'}" for name, value in values.items())


class SetClipFields(QUndoCommand):
    """Give clips the same field values; undo gives each its own earlier values back."""

    def __init__(self, owner: ClipProperties, clip_ids: Sequence[str], values: Mapping[str, str | None]) -> None:
        super().__init__(f"set {describe(values)} on {len(clip_ids)} clip(s)")
        self.owner = owner
        self.clip_ids = list(clip_ids)
        self.values = dict(values)
        self.change: FieldChange | None = None

    def redo(self) -> None:
        def work() -> FieldChange:
            self.change = set_fields(self.owner.window.project, self.clip_ids, self.values)
            return self.change

        self._run(work)
        if self.change is not None and not self.change.changed:  # nothing to undo: not a step
            self.setObsolete(True)

    def undo(self) -> None:
        if self.change is not None:
            self._run(lambda: restore_fields(self.owner.window.project, self.change))

    def _run(self, work) -> None:
        try:
            change = work()
        except (EarmarkError, sqlite3.Error) as exc:
            self.setObsolete(True)  # the stack drops it; the project keeps what it had (one transaction)
            if isinstance(exc, sqlite3.Error):  # damaged, full, read-only...: the one message, not SQLite's text
                exc = database_error(self.owner.window.project.folder, exc)
            self.owner.window._status(f"{self.text()}: {exc}; nothing was changed")
            return
        self.owner.changed(self.clip_ids, change, self.text())


class ClipPropertiesPanel(QWidget):
    """The dock's form: a box per field showing the selected clips' common value, Apply, and the one-step
    "Use as normal training clips"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Select clips in the table")
        self.summary.setWordWrap(True)
        self.boxes: dict[str, QComboBox] = {}
        form = QFormLayout()
        for name in FIELDS:
            box = QComboBox(objectName=f"clip_{name}")
            if name in CHOICES:
                box.addItems([KEEP, *CHOICES[name], NONE])
            else:
                box.setEditable(True)  # any machine or section name; empty keeps, "none" clears
                box.lineEdit().setPlaceholderText(KEEP)
            self.boxes[name] = box
            form.addRow(name.capitalize(), box)
        self.apply_button = QPushButton("Apply to selected clips", objectName="apply_clip_fields")
        self.training_button = QPushButton("Use as normal training clips", objectName="use_as_training")
        self.training_button.setToolTip("Split train, label normal: the clips detectors are fitted on")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(form)
        layout.addWidget(self.apply_button)
        layout.addWidget(self.training_button)
        layout.addStretch(1)
        self.show_selection([])

    def show_selection(self, clips: Sequence) -> None:
        """Show what the selected clips (their fields: engine Clip records or the table's ClipFields) have
        in common."""
        self.summary.setText(f"{len(clips)} clip(s) selected" if clips else "Select clips in the table")
        for button in (self.apply_button, self.training_button):
            button.setEnabled(bool(clips))
        for name, column in FIELDS.items():
            values = {getattr(clip, column) for clip in clips}
            common = next(iter(values)) if len(values) == 1 else None
            box = self.boxes[name]
            if name in CHOICES:
                box.setCurrentText(KEEP if len(values) != 1 else (common or NONE))
            else:
                box.clear()
                box.addItems(sorted({v for v in values if v}))
                box.setEditText(common or "")
                box.lineEdit().setPlaceholderText("(mixed)" if len(values) > 1 else NONE if clips else KEEP)
        self.shown = {name: box.currentText().strip() for name, box in self.boxes.items()}

    def chosen(self) -> dict[str, str | None]:
        """The fields the user changed from what the selection has in common (None clears a field)."""
        values: dict[str, str | None] = {}
        for name, box in self.boxes.items():
            text = box.currentText().strip()
            if text == self.shown.get(name) or text in (KEEP, ""):
                continue
            values[name] = None if text == NONE else text
        return values


class ClipProperties(QObject):
    """The dock, the clip table's context menu, and what a change does to the window's views."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = ClipPropertiesPanel()
        self.panel.apply_button.clicked.connect(lambda: self.apply(self.panel.chosen()))
        self.panel.training_button.clicked.connect(self.use_as_normal_training)
        dock = QDockWidget("Clip properties", window)
        dock.setObjectName("clip_properties")
        dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        window.splitDockWidget(window.docks["tree"], dock, Qt.Orientation.Vertical)
        window.docks["clip_properties"] = dock
        self.dock = dock
        view = window.table.view
        view.selectionModel().selectionChanged.connect(lambda *_: self.selection_changed())
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self.context_menu)

    # -- choosing ------------------------------------------------------------------------------------------
    def selection_changed(self) -> None:
        self.panel.show_selection(self.window.table.selected_clip_fields())

    def apply(self, values: Mapping[str, str | None], clip_ids: Sequence[str] | None = None) -> bool:
        """Set `values` on the given clips (default: the table's selection) as one undoable step."""
        if self.window.project is None:
            return False
        clip_ids = list(self.window.table.selected_clip_ids() if clip_ids is None else clip_ids)
        if not clip_ids or not values:
            self.window._status("Select clips in the table and choose what to set")
            return False
        try:
            normalise_values(values)  # a bad name is refused before it becomes an undo step
        except EarmarkError as exc:
            self.window._status(str(exc))
            return False
        self.window.editor.stack.push(SetClipFields(self, clip_ids, values))
        return True

    def use_as_normal_training(self) -> bool:
        return self.apply(NORMAL_TRAINING)

    def context_menu(self, position) -> None:
        if not self.window.table.selected_clip_ids():
            return
        menu = self.build_menu()
        menu.exec(self.window.table.view.viewport().mapToGlobal(position))

    def build_menu(self) -> QMenu:
        menu = QMenu(self.window.table)
        menu.addAction("Use as normal training clips", self.use_as_normal_training)
        for name in ("split", "label", "domain"):
            sub = menu.addMenu(name.capitalize())
            for value in (*CHOICES[name], None):
                sub.addAction(value or NONE, lambda n=name, v=value: self.apply({n: v}))
        for name in ("machine", "section"):
            menu.addAction(f"Set {name}...", lambda n=name: self._ask(n))
        menu.addSeparator()
        menu.addAction("Clip properties", lambda: (self.dock.show(), self.dock.raise_()))
        return menu

    def _ask(self, name: str) -> None:
        column = FIELDS[name]
        known = sorted({getattr(c, column) for c in self.window.project.clips() if getattr(c, column)})
        value, ok = QInputDialog.getItem(
            self.window, f"Set {name}", f"{name.capitalize()} of the selected clips (none clears it)", known, 0, True
        )
        if ok and value.strip():
            self.apply({name: value})

    # -- after a change (or its undo) ------------------------------------------------------------------------
    def changed(self, clip_ids: Sequence[str], change: FieldChange, text: str) -> None:
        """Show what changed and keep the user's filters and selection."""
        window = self.window
        table = window.table
        current = window.view.display.clip_id if window.view.display else None
        window._fill_tree()
        table.proxy.set_where(window.tree.current_where())  # the tree's node, or All clips if it went away
        if len(change.before) <= IN_PLACE:  # rows updated where they are: selection and scrolling stay
            rows = []
            for clip_id, values in current_fields(window.project, list(change.before)).items():
                position = table.model.row_of(clip_id)
                if position is not None:  # only the fields changed: scores and sources stay as the row has them
                    old = table.model.rows[position]
                    rows.append(dataclasses.replace(old, clip=dataclasses.replace(old.clip, **values)))
            table.model.upsert(ClipColumns.from_rows(rows))  # one update of the table for them all
        else:
            table.model.set_rows(clip_data.table_rows(window.project), table.model.detectors)
            self._reselect(clip_ids, current)
        message = f"{text}: {change.changed} changed"
        if change.stale:
            message += (
                "; stale: refit " + ", ".join(f"{d} {g}" for _, d, g in change.stale) + " (Train > Fit all detectors)"
            )
        window._status(message)
        if current in change.before:
            window.show_clip(current)  # its caption names the new values
        self.selection_changed()  # the boxes show the values as they are now
        self._rescore_dropped(change)

    def _reselect(self, clip_ids: Sequence[str], current: str | None) -> None:
        table = self.window.table
        if current is not None:
            table.select(current, reveal=False, quiet=True)
        table.select_clips(clip_ids)

    def _rescore_dropped(self, change: FieldChange) -> None:
        # Dropped files (source "inbox") given a machine or section are scored again by that group's models.
        model = self.window.table.model
        moved = [
            clip_id
            for clip_id, before in change.before.items()
            if model.source_of(clip_id) == "inbox" and {"machine_type", "section_id"} & set(before)
        ]
        if moved:
            self.window.rescore_clips(moved)

    def show_stale(self) -> None:
        """Mark stale models in the tree (their group) and the table (their score column and cells)."""
        project = self.window.project
        stale = stale_models(project) if project is not None else []
        table = self.window.table
        table.model.set_stale(stale)
        for column, detector in enumerate(table.model.detectors, start=len(FIXED)):
            if detector in table.model.stale_detectors:
                table.view.resizeColumnToContents(column)  # the header's "(stale: refit)" is read in full
        self.window.tree.mark_stale({group for _, _, group in stale})
