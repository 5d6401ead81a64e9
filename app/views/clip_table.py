"""The clip table: one row per clip with its metadata, one score column per fitted detector (raw, or
normalised against each model's training normals so detectors on different scales compare) and the
decision of the detector being viewed; sortable, filtered by text and by the node chosen in the data-set
tree."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from engine.data.clip import Clip
from engine.data.qa_flags import qa_text
from engine.detectors import drops
from engine.store.results import ClipScore

FIXED = ("name", "machine", "section", "domain", "split", "label", "QA", "duration")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ANOMALY_BRUSH = QBrush(QColor("#c62828"))


@dataclass
class ClipRow:
    clip: Clip
    source: str
    scores: dict[str, ClipScore] = field(default_factory=dict)
    name: str = ""
    #: detector -> what to know about the model that scored this clip (fitted on few normals, say)
    warnings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or os.path.basename(self.clip.path)


class ClipTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ClipRow] = []
        self.detectors: list[str] = []
        self.decision_detector: str | None = None
        self._index: dict[str, int] = {}
        #: Models fitted before their clips changed (Clip properties, `earmark set`), and their detectors.
        self.stale_models: set[int] = set()
        self.stale_detectors: set[str] = set()
        #: Score columns show normalised scores (View > Normalised scores) instead of raw ones.
        self.normalised = False

    # -- filling ---------------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[ClipRow], detectors: Sequence[str]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.detectors = list(detectors)
        if self.decision_detector not in self.detectors:
            self.decision_detector = self.detectors[0] if self.detectors else None
        self._index = {row.clip.clip_id: i for i, row in enumerate(self.rows)}
        self.endResetModel()

    def upsert(self, row: ClipRow) -> None:
        """Add or update one clip's row without resetting the table (a dropped file)."""
        new = [d for d in row.scores if d not in self.detectors]
        if new:  # a detector the table has no column for yet: rebuild the columns
            rows = [r for r in self.rows if r.clip.clip_id != row.clip.clip_id] + [row]
            self.set_rows(rows, sorted(self.detectors + new))
            return
        position = self._index.get(row.clip.clip_id)
        if position is None:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
            self._index[row.clip.clip_id] = len(self.rows)
            self.rows.append(row)
            self.endInsertRows()
        else:
            self.rows[position] = row
            self.dataChanged.emit(self.index(position, 0), self.index(position, self.columnCount() - 1))

    def set_decision_detector(self, detector: str | None) -> None:
        if detector in self.detectors and detector != self.decision_detector:
            self.decision_detector = detector
            column = self.columnCount() - 1
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, column, column)
            self.dataChanged.emit(self.index(0, column), self.index(len(self.rows) - 1, column))

    def set_normalised(self, on: bool) -> None:
        if on != self.normalised:
            self.normalised = on
            if self.detectors:
                first, last = len(FIXED), len(FIXED) + len(self.detectors) - 1
                self.headerDataChanged.emit(Qt.Orientation.Horizontal, first, last)
                self.dataChanged.emit(self.index(0, first), self.index(len(self.rows) - 1, last))

    def set_stale(self, stale: Sequence[tuple[int, str, str]]) -> None:
        """(model_id, detector, group) of the stale models: their column headers and scores say so."""
        self.stale_models = {model_id for model_id, _, _ in stale}
        self.stale_detectors = {detector for _, detector, _ in stale}
        if self.columnCount():
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self.columnCount() - 1)

    def row_of(self, clip_id: str) -> int | None:
        return self._index.get(clip_id)

    # -- Qt model ---------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(FIXED) + len(self.detectors) + 1

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        if section < len(FIXED):
            return FIXED[section]
        if section < len(FIXED) + len(self.detectors):
            detector = self.detectors[section - len(FIXED)]
            title = f"{detector} (normalised)" if self.normalised else detector
            return f"{title} (stale: refit)" if detector in self.stale_detectors else title
        return f"decision ({self.decision_detector})" if self.decision_detector else "decision"

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        value = self._value(row, index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            if isinstance(value, float):
                return f"{value:.1f} s" if index.column() == FIXED.index("duration") else f"{value:.4g}"
            return "" if value is None else str(value)
        if role == SORT_ROLE:  # compared by the proxy in C++: numbers as numbers, a missing score lowest
            if index.column() >= FIXED.index("duration") and index.column() < len(FIXED) + len(self.detectors):
                return -math.inf if value is None else float(value)
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.ForegroundRole and value in ("anomaly", drops.UNLIKE_TEXT):
            return ANOMALY_BRUSH
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:
            return row.clip.path
        if role == Qt.ItemDataRole.ToolTipRole and isinstance(value, str) and value.endswith("(guessed)"):
            return (
                "Scored by the models of the fitted group this recording resembles most; set its machine and "
                "section to score it with its own group's models"
            )
        if role == Qt.ItemDataRole.ToolTipRole and len(FIXED) <= index.column() < len(FIXED) + len(self.detectors):
            detector = self.detectors[index.column() - len(FIXED)]
            found, notes = row.scores.get(detector), [row.warnings.get(detector)]
            if found is not None and found.model_id in self.stale_models:
                notes.insert(0, f"stale: refit (the clips model {found.model_id} was fitted on have changed since)")
            if found is not None and self.normalised and found.normalised is None:
                notes.insert(
                    0,
                    "no normalised score: score the clip again (a model fitted before normalised "
                    "scores were kept must be fitted again)",
                )
            return "\n".join(n for n in notes if n) or None
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == FIXED.index("QA") and row.clip.qa:
            qa = row.clip.qa
            return (
                f"level {qa.rms:.1f} dBFS, peak {qa.peak:.3f}, {qa.clipping_ratio:.2%} clipped, "
                f"{qa.silence_ratio:.0%} silent"
            )
        return None

    def _value(self, row: ClipRow, column: int):
        clip = row.clip
        machine, section = clip.machine_type, clip.section_id
        guessed = clip.attributes.get(drops.GUESSED_GROUP) if machine is None or section is None else None
        if guessed:  # a drop with no group of its own: the group whose models scored it, said to be a guess
            machine, section = (
                own if own is not None else f"{part} (guessed)" if part else None
                for own, part in zip((machine, section), drops.group_fields(guessed), strict=False)
            )
        fixed = (
            row.name,
            machine,
            section,
            clip.domain,
            clip.split,
            clip.label,
            qa_text(clip.duration_s, clip.qa),
            clip.duration_s,
        )
        if column < len(FIXED):
            return fixed[column]
        if column < len(FIXED) + len(self.detectors):
            found = row.scores.get(self.detectors[column - len(FIXED)])
            value = None if found is None else found.normalised if self.normalised else found.score
            return None if value is None else float(value)
        found = row.scores.get(self.decision_detector) if self.decision_detector else None
        if found is not None and guessed and clip.attributes.get(drops.UNLIKE):
            return drops.UNLIKE_TEXT
        return None if found is None else ("anomaly" if found.decision else "normal")


class ClipFilter(QSortFilterProxyModel):
    """Text filter over every column, plus the data-set tree's node (equality on metadata fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._where: dict[str, str | None] = {}
        self._text = ""
        self._only: frozenset[str] | None = None  # show_only (evaluation dock)

    def set_where(self, where: Mapping[str, str | None]) -> None:
        self.beginFilterChange()
        self._where = dict(where)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    # -- show_only: minimal version for the evaluation dock (h2); the clip table's own replaces it -----------
    def set_only(self, clip_ids: Collection[str] | None) -> None:
        self.beginFilterChange()
        self._only = None if clip_ids is None else frozenset(clip_ids)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    # -- end show_only -----------------------------------------------------------------------------------------

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        row: ClipRow = self.sourceModel().rows[source_row]
        clip = row.clip
        if self._only is not None and clip.clip_id not in self._only:
            return False
        for key, wanted in self._where.items():
            have = row.source == "inbox" if key == "inbox" else getattr(clip, key)
            if have != wanted:
                return False
        if self._text:
            model = self.sourceModel()
            return any(self._text in str(model._value(row, c) or "").lower() for c in range(model.columnCount()))
        return True


class ClipTable(QWidget):
    """The filter box and the table; `clip_selected(clip_id)` when the current row changes."""

    clip_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ClipTableModel()
        self.proxy = ClipFilter()
        self.proxy.setSourceModel(self.model)
        self.filter_box = QLineEdit(placeholderText="Filter clips (name, machine, label, ...)")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.proxy.set_text)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setAlternatingRowColors(True)
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)
        # show_only (evaluation dock, h2): a line saying which clips are shown, with a link to show all again
        self.only_line = QLabel(objectName="show_only_line")
        self.only_line.linkActivated.connect(lambda _: self.show_only(None))
        self.only_line.hide()
        # end show_only
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_box)
        layout.addWidget(self.only_line)
        layout.addWidget(self.view)

    # -- show_only: minimal version for the evaluation dock (h2); the clip table's own replaces it -----------
    def show_only(self, clip_ids: Collection[str] | None, why: str = "") -> None:
        """Show only these clips (None: every clip again), and say so above the table."""
        self.proxy.set_only(clip_ids)
        if clip_ids is None:
            self.only_line.hide()
            return
        self.only_line.setText(
            f"showing {self.proxy.rowCount()} clips" + (f" of {why}" if why else "") + " (<a href='clear'>clear</a>)"
        )
        self.only_line.show()

    # -- end show_only -----------------------------------------------------------------------------------------

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid():
            row = self.model.rows[self.proxy.mapToSource(current).row()]
            self.clip_selected.emit(row.clip.clip_id)

    def select(self, clip_id: str, reveal: bool = True, quiet: bool = False) -> bool:
        """Make `clip_id` the current row; False if it is not in the table, or hidden by the filters and
        `reveal` is off (with `reveal`, the text filter is cleared to show it). `quiet`: no clip_selected."""
        row = self.model.row_of(clip_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            if not reveal:
                return False
            self.filter_box.clear()
            self.proxy.set_where({})
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.view.selectionModel().blockSignals(quiet)
        try:
            self.view.setCurrentIndex(index)
        finally:
            self.view.selectionModel().blockSignals(False)
        self.view.scrollTo(index)
        return True

    def visible_clip_ids(self) -> list[str]:
        """The clips the table shows, in its order (sort and filters as the user set them)."""
        return [
            self.model.rows[self.proxy.mapToSource(self.proxy.index(row, 0)).row()].clip.clip_id
            for row in range(self.proxy.rowCount())
        ]

    def selected_clip_ids(self) -> list[str]:
        return [row.clip.clip_id for row in self.selected_rows()]

    def selected_rows(self) -> list[ClipRow]:
        """The selected rows in the table's order. Read from the selection's row ranges: selectedRows() takes
        quadratic time when thousands of rows are selected."""
        shown = sorted(
            {row for span in self.view.selectionModel().selection() for row in range(span.top(), span.bottom() + 1)}
        )
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(row, 0)).row()] for row in shown]

    def select_clips(self, clip_ids) -> None:
        """Select these clips' rows (those the filters show), as few row ranges as they make."""
        shown = sorted(
            index.row()
            for index in (
                self.proxy.mapFromSource(self.model.index(row, 0))
                for row in map(self.model.row_of, clip_ids)
                if row is not None
            )
            if index.isValid()
        )
        selection = QItemSelection()
        last_column = self.model.columnCount() - 1
        start = 0
        for i, row in enumerate(shown):
            if i + 1 == len(shown) or shown[i + 1] != row + 1:  # the end of a run of adjacent rows
                selection.select(self.proxy.index(shown[start], 0), self.proxy.index(row, last_column))
                start = i + 1
        self.view.selectionModel().select(
            selection, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )

    def resize_columns(self) -> None:
        """Fit the columns to their contents, judged on the first rows (all rows would take seconds)."""
        columns = self.model.columnCount()
        if columns == getattr(self, "_sized_columns", -1):
            return
        self._sized_columns = columns
        self.view.horizontalHeader().setResizeContentsPrecision(40)
        self.view.resizeColumnsToContents()
        self.view.setColumnWidth(0, min(self.view.columnWidth(0), 320))
