"""The clip table's view of its model: the rows shown and their order (`ClipFilter`, sorted and filtered
with numpy over the model's columns), and a header that stays quick with many rows selected."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRect, Qt, QTimer
from PySide6.QtGui import QCursor, QPainter
from PySide6.QtWidgets import QHeaderView, QStyle, QStyleOptionHeader

if TYPE_CHECKING:
    from app.views.clip_table import ClipTableModel

# The signals' full signatures, to emit them with a hint (PySide picks the one without arguments otherwise).
_PARENTS, _HINT = "QList<QPersistentModelIndex>", "QAbstractItemModel::LayoutChangeHint"
_VERTICAL = QAbstractTableModel.LayoutChangeHint.VerticalSortHint


class ClipFilter(QAbstractTableModel):
    """The rows the view shows, in its order: the clips that pass the data-set tree's node (equality on
    metadata fields), the text filter (in any column's text) and `set_only`, sorted by one column. Kept as
    an array of the model's rows, recomputed with numpy whenever the rows or the filters change; the
    view's selection and current row follow their clips (as a QSortFilterProxyModel does)."""

    def __init__(self) -> None:
        super().__init__()
        self._source: ClipTableModel | None = None
        self.order = np.zeros(0, np.int64)
        self._position: np.ndarray | None = None
        self._where: dict[str, object] = {}
        self._text = ""
        self._only: frozenset[str] | None = None
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._rows = self._columns = 0
        #: The model's rows changed and the order is not worked out again yet (see `_changed`).
        self._dirty = False

    def setSourceModel(self, model: ClipTableModel) -> None:
        self.beginResetModel()
        self._source = model
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._source_reset)
        model.rowsInserted.connect(self._changed)
        model.dataChanged.connect(self._changed)
        model.headerDataChanged.connect(self.headerDataChanged)
        self._reorder()
        self.endResetModel()

    def sourceModel(self) -> ClipTableModel:
        return self._source

    def _source_reset(self) -> None:
        self._dirty = False
        self._reorder()
        self.endResetModel()

    def _changed(self, *_) -> None:
        """Rows added or changed: sorted and filtered again once the event loop is back, so that a caller
        updating rows one at a time (a drop of many files) pays for one sort, not one per row. Until then
        the view shows the rows where they were; asking where a clip is (`position_of`) sorts at once."""
        if not self._dirty:
            self._dirty = True
            QTimer.singleShot(0, self, self.flush)

    def flush(self) -> None:
        """Sort and filter now if rows changed since."""
        if self._dirty:
            self.refresh()

    def _reorder(self) -> None:
        self.order = self._ordered()
        self._position = None
        self._rows, self._columns = len(self.order), self._source.columnCount() if self._source else 0

    # -- what is shown ------------------------------------------------------------------------------------
    def set_where(self, where: Mapping[str, object]) -> None:
        self._where = dict(where)
        self.refresh()

    def set_text(self, text: str) -> None:
        self._text = text.strip().lower()
        self.refresh()

    def set_only(self, clip_ids: Collection[str] | None) -> None:
        self._only = None if clip_ids is None else frozenset(clip_ids)
        self.refresh()

    @property
    def only(self) -> frozenset[str] | None:
        """The clips `set_only` chose, or None."""
        return self._only

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column, self._sort_order = column, order
        self.refresh()

    def sortColumn(self) -> int:
        return self._sort_column

    def sortOrder(self) -> Qt.SortOrder:
        return self._sort_order

    def shown_mask(self) -> np.ndarray:
        """Which of the model's rows pass the filters."""
        columns, model = self._source.columns, self._source
        shown = np.ones(len(columns), bool)
        for key, wanted in self._where.items():
            shown &= columns.equals(key, wanted)
        if self._only is not None:
            shown &= columns.chosen(self._only)
        if self._text and shown.any():
            found = np.zeros(len(columns), bool)
            for column in range(model.columnCount()):
                hits = columns.matches(model.column(column), self._text)
                if hits is not None:
                    found |= hits
            shown &= found
        return shown

    def _ordered(self) -> np.ndarray:
        if self._source is None:
            return np.zeros(0, np.int64)
        visible = np.flatnonzero(self.shown_mask())
        if not 0 <= self._sort_column < self._source.columnCount() or not len(visible):
            return visible
        key = self._source.columns.sort_key(self._source.column(self._sort_column))[visible]
        if self._sort_order == Qt.SortOrder.DescendingOrder:  # ties stay in import order either way
            key = -key
        return visible[np.argsort(key, kind="stable")]

    def refresh(self) -> None:
        """Filter and sort again, as one layout change: persistent indexes (the selection, the current
        row) move with their clips, and those of clips no longer shown become invalid."""
        self._dirty = False
        # Rows only move (or go): with this hint the selection keeps one index per selected row, not per cell.
        self.layoutAboutToBeChanged[_PARENTS, _HINT].emit([], _VERTICAL)
        old_order = self.order
        self._reorder()
        persistent = self.persistentIndexList()
        if persistent:
            rows = np.fromiter((index.row() for index in persistent), np.int64, len(persistent))
            known = (rows >= 0) & (rows < len(old_order))
            moved_to = np.full(len(rows), -1, np.int64)
            moved_to[known] = self._positions()[old_order[rows[known]]]
            # createIndex, not index(): no count asked of this model per index (thousands with many selected)
            moved = [
                self.createIndex(row, index.column()) if row >= 0 else QModelIndex()
                for row, index in zip(moved_to.tolist(), persistent, strict=True)
            ]
            self.changePersistentIndexList(persistent, moved)
        self.layoutChanged[_PARENTS, _HINT].emit([], _VERTICAL)

    # -- mapping between the view's rows and the model's ----------------------------------------------------
    def _positions(self) -> np.ndarray:
        """The view's row of each of the model's rows, -1 where it is filtered out."""
        if self._position is None:
            self._position = np.full(len(self._source.columns) if self._source else 0, -1, np.int64)
            self._position[self.order] = np.arange(len(self.order))
        return self._position

    def position_of(self, source_row: int) -> int:
        """The view's row of the model's row `source_row`, -1 when it is filtered out."""
        self.flush()
        positions = self._positions()
        return int(positions[source_row]) if 0 <= source_row < len(positions) else -1

    def source_row(self, row: int) -> int:
        return int(self.order[row])

    def mapToSource(self, index: QModelIndex) -> QModelIndex:
        if not index.isValid():
            return QModelIndex()
        return self._source.index(self.source_row(index.row()), index.column())

    def mapFromSource(self, index: QModelIndex) -> QModelIndex:
        row = self.position_of(index.row()) if index.isValid() else -1
        return self.index(row, index.column()) if row >= 0 else QModelIndex()

    # -- Qt model ---------------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        # Kept, not asked of the model: the view asks hundreds of thousands of times with many rows selected.
        return 0 if parent.isValid() else self._columns

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        return self._source.headerData(section, orientation, role) if self._source else None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.order):
            return None
        return self._source.cell(int(self.order[index.row()]), index.column(), role)


class ClipHeader(QHeaderView):
    """The horizontal header. Qt's own asks the selection model, for each section it paints, whether its
    whole column is selected, which walks every row: seconds per paint with 100 000 rows selected. This
    one paints a section from its title and sort indicator alone (a selected column is not drawn pressed)."""

    def __init__(self, parent=None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setSectionsClickable(True)  # (QTableView makes its own header clickable, not one it is given)

    def paintSection(self, painter: QPainter, rect: QRect, logical: int) -> None:
        if not rect.isValid():
            return
        option = QStyleOptionHeader()
        self.initStyleOption(option)
        option.rect = rect
        option.section = logical
        option.text = str(self.model().headerData(logical, self.orientation()) or "") if self.model() else ""
        option.textAlignment = self.defaultAlignment()
        option.iconAlignment = Qt.AlignmentFlag.AlignVCenter
        if self.isEnabled():
            option.state |= QStyle.StateFlag.State_Enabled
        if self.window().isActiveWindow():
            option.state |= QStyle.StateFlag.State_Active
        if self.sectionsClickable() and self.underMouse() and rect.contains(self.mapFromGlobal(QCursor.pos())):
            option.state |= QStyle.StateFlag.State_MouseOver
        if self.isSortIndicatorShown() and self.sortIndicatorSection() == logical:
            ascending = self.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
            option.sortIndicator = (
                QStyleOptionHeader.SortIndicator.SortDown if ascending else QStyleOptionHeader.SortIndicator.SortUp
            )
        visual, shown = self.visualIndex(logical), self.count() - self.hiddenSectionCount()
        first, last = visual == 0, visual == self.count() - 1
        option.position = (
            QStyleOptionHeader.SectionPosition.OnlyOneSection
            if shown == 1
            else QStyleOptionHeader.SectionPosition.Beginning
            if first
            else QStyleOptionHeader.SectionPosition.End
            if last
            else QStyleOptionHeader.SectionPosition.Middle
        )
        option.selectedPosition = QStyleOptionHeader.SelectedPosition.NotAdjacent
        painter.save()
        self.style().drawControl(QStyle.ControlElement.CE_Header, option, painter, self)
        painter.restore()
