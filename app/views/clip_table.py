"""The clip table: one row per clip with its metadata, one score column per fitted detector (raw, or
normalised against each model's training normals so detectors on different scales compare) and the
decision of the detector being viewed; sortable, filtered by text, by the node chosen in the data-set
tree and by a set of clips another view chose (`ClipTable.show_only`).

Built for projects of 100 000 clips: the model holds the clips column-wise (`ClipColumns`) and the
filter model sorts and filters with numpy, never with a Python call per row (a QSortFilterProxyModel
calls `data()` n log n times to sort and `filterAcceptsRow` n times to filter: seconds at that size).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from app.views.clip_columns import FIXED, ClipColumns, ClipFields, ClipRow, Column, number_text
from app.views.clip_filter import ClipFilter, ClipHeader
from engine.detectors import drops
from engine.store.clip_records import clip_qa

__all__ = ["FIXED", "ClipFilter", "ClipRow", "ClipTable", "ClipTableModel"]

ANOMALY_BRUSH = QBrush(QColor("#c62828"))
GUESSED_TIP = (
    "Scored by the models of the fitted group this recording resembles most; set its machine and section to "
    "score it with its own group's models"
)


class ClipTableModel(QAbstractTableModel):
    """Every clip, in import order (the filter model shows them sorted and filtered)."""

    def __init__(self) -> None:
        super().__init__()
        self.columns = ClipColumns([], {})
        self.detectors: list[str] = []
        self.decision_detector: str | None = None
        #: Models fitted before their clips changed (Clip properties, `earmark set`), and their detectors.
        self.stale_models: set[int] = set()
        self.stale_detectors: set[str] = set()
        #: Score columns show normalised scores (View > Normalised scores) instead of raw ones.
        self.normalised = False
        self._names: dict[str, str] | None = None

    @property
    def rows(self) -> ClipColumns:
        """The rows in import order, as `ClipRow`s built when asked for."""
        return self.columns

    # -- filling ---------------------------------------------------------------------------------------
    def set_rows(self, rows: ClipColumns | Sequence[ClipRow], detectors: Sequence[str]) -> None:
        self.beginResetModel()
        self.columns = rows if isinstance(rows, ClipColumns) else ClipColumns.from_rows(list(rows))
        self.detectors = list(detectors)
        if self.decision_detector not in self.detectors:
            self.decision_detector = self.detectors[0] if self.detectors else None
        self._names = None
        self.endResetModel()

    def upsert(self, row: ClipRow | ClipColumns) -> None:
        """Add or update clips' rows without resetting the table (a dropped file)."""
        other = row if isinstance(row, ClipColumns) else ClipColumns.from_rows([row])
        new = [d for d in other.scores if d not in self.detectors]
        held = len(self.columns)
        added = sum(1 for record in other.records if record[0] not in self.columns.positions)
        if new:  # a detector the table has no column for yet: the columns change
            self.beginResetModel()
            self.columns.upsert(other)
            self.detectors = sorted(self.detectors + new)
            if self.decision_detector not in self.detectors:
                self.decision_detector = self.detectors[0]
            self._names = None
            self.endResetModel()
            return
        if added:
            self.beginInsertRows(QModelIndex(), held, held + added - 1)
        at = self.columns.upsert(other)
        self._names = None
        if added:
            self.endInsertRows()
        replaced = [i for i in at if i < held]
        if replaced:
            self.dataChanged.emit(self.index(min(replaced), 0), self.index(max(replaced), self.columnCount() - 1))

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
        return self.columns.positions.get(clip_id)

    def clip_id(self, row: int) -> str:
        return self.columns.records[row][0]

    def clip_names(self) -> dict[str, str]:
        """clip_id -> the file name the table shows (kept until the rows change)."""
        if self._names is None:
            self._names = dict(zip((r[0] for r in self.columns.records), self.columns.names(), strict=True))
        return self._names

    def source_of(self, clip_id: str) -> str | None:
        """Where the clip came from (the import format, or "inbox"); None when the table does not hold it."""
        row = self.row_of(clip_id)
        return None if row is None else self.columns.records[row][-1]

    def column(self, column: int) -> Column:
        if column < len(FIXED):
            return Column(FIXED[column])
        if column < len(FIXED) + len(self.detectors):
            return Column("score", self.detectors[column - len(FIXED)], self.normalised)
        return Column("decision", self.decision_detector)

    # -- Qt model ---------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

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
        return self.cell(index.row(), index.column(), role) if index.isValid() else None

    def cell(self, row: int, column: int, role: int = Qt.ItemDataRole.DisplayRole):
        """What `data()` gives for the cell at (row, column) of the rows in import order."""
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.ToolTipRole):
            return None
        spec = self.column(column)
        value = self.columns.value(row, spec)
        if role == Qt.ItemDataRole.DisplayRole:
            return number_text(value, spec.kind) if isinstance(value, float) else "" if value is None else str(value)
        if role == Qt.ItemDataRole.ForegroundRole:
            return ANOMALY_BRUSH if value in ("anomaly", drops.UNLIKE_TEXT) else None
        return self._tooltip(row, spec, value)

    def _tooltip(self, row: int, spec: Column, value) -> str | None:
        record = self.columns.records[row]
        if spec.kind == "name":
            return record[1]
        if isinstance(value, str) and value.endswith("(guessed)"):
            return GUESSED_TIP
        if spec.kind == "score":
            model_id = self.columns.model_id(row, spec.detector)
            notes = [self.columns.warnings.get(model_id) if model_id is not None else None]
            if model_id is not None and model_id in self.stale_models:
                notes.insert(0, f"stale: refit (the clips model {model_id} was fitted on have changed since)")
            if model_id is not None and self.normalised and value is None:
                notes.insert(
                    0,
                    "no normalised score: score the clip again (a model fitted before normalised "
                    "scores were kept must be fitted again)",
                )
            return "\n".join(n for n in notes if n) or None
        if spec.kind == "QA":
            qa = clip_qa(record)
            if qa:
                return (
                    f"level {qa.rms:.1f} dBFS, peak {qa.peak:.3f}, {qa.clipping_ratio:.2%} clipped, "
                    f"{qa.silence_ratio:.0%} silent"
                )
        return None

    def _value(self, row: ClipRow, column: int):
        """The value of `row`'s cell in `column` (a row of this table)."""
        return self.columns.value(self.columns.positions[row.clip.clip_id], self.column(column))


class ClipTable(QWidget):
    """The filter box, the line saying which clips another view chose, and the table;
    `clip_selected(clip_id)` when the current row changes."""

    clip_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ClipTableModel()
        self.proxy = ClipFilter()
        self.proxy.setSourceModel(self.model)
        self.filter_box = QLineEdit(placeholderText="Filter clips (name, machine, label, ...)")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.proxy.set_text)
        self.only_line = QLabel(objectName="show_only_line")
        self.only_line.linkActivated.connect(lambda _: self.show_only(None))
        self.only_line.hide()
        self._only_why = ""
        self.view = QTableView()
        self.view.setHorizontalHeader(ClipHeader(self.view))
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
        self.proxy.layoutChanged.connect(self._say_only)
        self.proxy.modelReset.connect(self._say_only)
        # What sorting and filtering need is derived in idle steps after the rows change (see ClipColumns.warm).
        self._warming: Iterator[None] | None = None
        self._warm_timer = QTimer(self, singleShot=True)
        self._warm_timer.timeout.connect(self._warm_step)
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.dataChanged):
            signal.connect(self._warm_later)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_box)
        layout.addWidget(self.only_line)
        layout.addWidget(self.view)

    def _warm_later(self, *_) -> None:
        model = self.model
        self._warming = model.columns.warm([model.column(c) for c in range(model.columnCount())])
        self._warm_timer.start(100)

    def _warm_step(self) -> None:
        if self._warming is not None and next(self._warming, StopIteration) is not StopIteration:
            self._warm_timer.start(0)
        else:
            self._warming = None

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid():
            self.clip_selected.emit(self.model.clip_id(self.proxy.source_row(current.row())))

    def show_only(self, clip_ids: Collection[str] | None, why: str = "") -> None:
        """Show only these clips (None: every clip again), and say so above the table with a link that
        shows every clip again. The text filter and the data-set tree's node still apply."""
        self._only_why = why
        self.proxy.set_only(clip_ids)
        self._say_only()

    def _say_only(self) -> None:
        """The line above the table, while `show_only` holds: how many of the chosen clips are shown."""
        chosen = self.proxy.only
        if chosen is None:
            self.only_line.hide()
            return
        held = sum(1 for clip_id in chosen if self.model.row_of(clip_id) is not None)
        shown = self.proxy.rowCount()
        said = f"showing {shown} clips" if shown == held else f"showing {shown} of {held} clips"
        why = f" of {self._only_why}" if self._only_why else ""
        hidden = " (the filters hide the others)" if shown < held else ""
        self.only_line.setText(f"{said}{why}{hidden} (<a href='clear'>clear</a>)")
        self.only_line.show()

    def select(self, clip_id: str, reveal: bool = True, quiet: bool = False) -> bool:
        """Make `clip_id` the current row; False if it is not in the table, or hidden by the filters and
        `reveal` is off (with `reveal`, the filters are cleared to show it). `quiet`: no clip_selected."""
        row = self.model.row_of(clip_id)
        if row is None:
            return False
        shown = self.proxy.position_of(row)
        if shown < 0:
            if not reveal:
                return False
            self.filter_box.clear()
            self.proxy.set_where({})
            if self.proxy.position_of(row) < 0:
                self.show_only(None)
            shown = self.proxy.position_of(row)
        index = self.proxy.index(shown, 0)
        self.view.selectionModel().blockSignals(quiet)
        try:
            self.view.setCurrentIndex(index)
        finally:
            self.view.selectionModel().blockSignals(False)
        self.view.scrollTo(index)
        return True

    def visible_clip_ids(self) -> list[str]:
        """The clips the table shows, in its order (sort and filters as the user set them)."""
        self.proxy.flush()
        records = self.model.columns.records
        return [records[i][0] for i in self.proxy.order.tolist()]

    def selected_clip_ids(self) -> list[str]:
        records = self.model.columns.records
        return [records[i][0] for i in self._selected_source_rows()]

    def selected_rows(self) -> list[ClipRow]:
        """The selected rows in the table's order."""
        return [self.model.columns.row(i) for i in self._selected_source_rows()]

    def selected_clip_fields(self) -> list[ClipFields]:
        """The selected clips' metadata fields, in the table's order (no `Clip` built per row)."""
        return [self.model.columns.fields(i) for i in self._selected_source_rows()]

    def _selected_source_rows(self) -> list[int]:
        # Read from the selection's row ranges: selectedRows() takes quadratic time with thousands selected.
        spans = [(span.top(), span.bottom() + 1) for span in self.view.selectionModel().selection()]
        if not spans:
            return []
        shown = np.unique(np.concatenate([np.arange(top, end) for top, end in spans]))
        return self.proxy.order[shown[shown < len(self.proxy.order)]].tolist()

    def select_clips(self, clip_ids) -> None:
        """Select these clips' rows (those the filters show), as few row ranges as they make."""
        rows = [row for row in map(self.model.row_of, clip_ids) if row is not None]
        shown = sorted(p for p in map(self.proxy.position_of, rows) if p >= 0)
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
