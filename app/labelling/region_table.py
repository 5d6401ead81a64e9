"""The region table dock: every region of the shown clip (or of the whole project) with its start, end,
duration, label, kind, confidence and source model. A click jumps to the region, a double click plays it;
the label and kind boxes filter the rows, and the selected rows are what "Export selected regions" writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.views.overlays import TRUTH_COLOUR
from app.views.region_items import UNCLASSED_COLOUR
from engine.store.labels import KINDS, Region

COLUMNS = ("clip", "start", "end", "duration", "label", "kind", "confidence", "model")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ALL = "(all)"


class RegionTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.regions: list[Region] = []
        self.colours: dict[str, str] = {}
        self.models: dict[int, str] = {}
        self.names: dict[str, str] = {}

    def set_regions(
        self, regions: Sequence[Region], colours: dict[str, str], models: dict[int, str], names: dict[str, str]
    ) -> None:
        self.beginResetModel()
        self.regions, self.colours, self.models, self.names = list(regions), colours, models, names
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.regions)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        region = self.regions[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DecorationRole and column == "label":
            if region.kind == "truth":
                return QColor(TRUTH_COLOUR)
            return QColor(self.colours.get(region.label, UNCLASSED_COLOUR))
        if role == SORT_ROLE:
            return self._value(region, column)
        if role == Qt.ItemDataRole.DisplayRole:
            value = self._value(region, column)
            if column in ("start", "end", "duration"):
                return f"{value:.3f}"
            if column == "confidence":
                return "" if value is None else f"{value:.0%}"
            if column == "label" and region.kind == "proposal":
                value = f"{value}?"  # a detector's finding, not a class the user chose
            if column == "label" and region.is_box:
                return f"{value}  [{region.low_hz:.0f}-{region.high_hz:.0f} Hz]"
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("start", "end", "duration", "confidence"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _value(self, region: Region, column: str):
        return {
            "clip": self.names.get(region.clip_id, region.clip_id),
            "start": region.start_s,
            "end": region.end_s,
            "duration": region.duration_s,
            "label": region.label,
            "kind": region.kind,
            "confidence": region.confidence,
            "model": self.models.get(region.model_id, "") if region.model_id is not None else "",
        }[column]


class RegionFilter(QSortFilterProxyModel):
    def __init__(self) -> None:
        super().__init__()
        self.label: str | None = None
        self.kind: str | None = None
        self.setSortRole(SORT_ROLE)

    def set_filter(self, label: str | None, kind: str | None) -> None:
        self.beginFilterChange()
        self.label, self.kind = label, kind
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:
        region = self.sourceModel().regions[row]
        return (self.label is None or region.label == self.label) and (self.kind is None or region.kind == self.kind)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            return a is None and b is not None
        return a < b


class RegionTable(QWidget):
    """Signals carry the region; the window decides how to jump to it and play it."""

    region_chosen = Signal(object)  # Region: jump to it
    region_played = Signal(object)  # Region: play it
    scope_changed = Signal(bool)  # True: the whole project

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = RegionTableModel()
        self.proxy = RegionFilter()
        self.proxy.setSourceModel(self.model)
        self.view = QTableView()
        self.view.setObjectName("region_table")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(1, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        for column, width in zip(range(len(COLUMNS)), (200, 58, 58, 62, 130, 66, 78, 90), strict=True):
            self.view.setColumnWidth(column, width)
        self.view.clicked.connect(lambda index: self.region_chosen.emit(self._region(index)))
        self.view.doubleClicked.connect(lambda index: self.region_played.emit(self._region(index)))
        self.label_box = QComboBox(objectName="region_label_filter")
        self.kind_box = QComboBox(objectName="region_kind_filter")
        self.kind_box.addItems([ALL, *KINDS])
        self.whole_project = QCheckBox("All clips", objectName="region_scope")
        self.whole_project.toggled.connect(self.scope_changed.emit)
        self.count = QLabel("")
        for box in (self.label_box, self.kind_box):
            box.currentTextChanged.connect(self._filter_changed)
            # A long class name must not widen the dock (and the window) when the classes are filled in.
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(6)
        bar = QHBoxLayout()  # two rows of filters, so the dock is narrow enough for a laptop
        bar.addWidget(QLabel("Label"))
        bar.addWidget(self.label_box, 1)
        bar.addWidget(QLabel("Kind"))
        bar.addWidget(self.kind_box, 1)
        scope = QHBoxLayout()
        scope.addWidget(self.whole_project)
        scope.addStretch(1)
        scope.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addLayout(scope)
        layout.addWidget(self.view)

    def set_regions(
        self,
        regions: Sequence[Region],
        colours: dict[str, str],
        models: dict[int, str],
        names: dict[str, str],
        selected: int | None = None,
    ) -> None:
        label = self.label_box.currentText()
        self.label_box.blockSignals(True)
        self.label_box.clear()
        self.label_box.addItems([ALL, *colours, *sorted({r.label for r in regions} - set(colours))])
        self.label_box.setCurrentText(label if label else ALL)
        self.label_box.blockSignals(False)
        self._filter_changed()
        self.model.set_regions(regions, colours, models, names)
        self.view.setColumnHidden(0, not self.whole_project.isChecked())
        self.count.setText(f"{self.proxy.rowCount()} of {len(regions)} region(s)")
        self.select(selected)

    def select(self, region_id: int | None) -> None:
        """Highlight a region's row (without emitting region_chosen)."""
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self._region(index).region_id == region_id:
                self.view.selectRow(row)
                self.view.scrollTo(index)
                return
        self.view.clearSelection()

    def selected_regions(self) -> list[Region]:
        rows = {index.row() for index in self.view.selectionModel().selectedRows()}
        return [self._region(self.proxy.index(row, 0)) for row in sorted(rows)]

    def visible_regions(self) -> list[Region]:
        return [self._region(self.proxy.index(row, 0)) for row in range(self.proxy.rowCount())]

    def _region(self, index: QModelIndex) -> Region:
        return self.model.regions[self.proxy.mapToSource(index).row()]

    def _filter_changed(self, *_: object) -> None:
        label, kind = self.label_box.currentText(), self.kind_box.currentText()
        self.proxy.set_filter(None if label in (ALL, "") else label, None if kind == ALL else kind)
        self.count.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} region(s)")
