"""The data-set tree: machine > section > domain > split with clip counts, plus the inbox of dropped files.
Choosing a node filters the clip table to it (`filter_chosen(where)`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from engine.data.clip import group_key

LEVELS = ("machine_type", "section_id", "domain", "split")
WHERE_ROLE = Qt.ItemDataRole.UserRole + 2


class DatasetTree(QTreeWidget):
    filter_chosen = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["data set", "clips"])
        # The names take what the counts leave, so the counts stay in view in a narrow dock.
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.currentItemChanged.connect(self._chosen)

    def fill(self, summary: Sequence[Mapping], inbox: int) -> None:
        """`summary`: rows of Project.summary() (counts by machine, section, domain, split, label)."""
        previous = self.current_where()
        self.blockSignals(True)
        self.clear()
        total = sum(r["clips"] for r in summary)
        root = QTreeWidgetItem(self, ["All clips", str(total)])
        root.setData(0, WHERE_ROLE, {})
        nodes: dict[tuple, QTreeWidgetItem] = {}
        counts: dict[tuple, int] = {}
        for row in summary:
            path: tuple = ()
            for level in LEVELS:
                path += (row[level],)
                counts[path] = counts.get(path, 0) + row["clips"]
                if path not in nodes:
                    parent = nodes.get(path[:-1], root)
                    item = QTreeWidgetItem(parent, [self._label(level, row[level]), ""])
                    item.setData(0, WHERE_ROLE, dict(zip(LEVELS, path, strict=False)))
                    nodes[path] = item
        for path, item in nodes.items():
            item.setText(1, str(counts[path]))
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
        inbox_item = QTreeWidgetItem(self, ["Inbox (dropped files)", str(inbox)])
        inbox_item.setData(0, WHERE_ROLE, {"inbox": True})
        root.setExpanded(True)
        for path, item in nodes.items():
            item.setExpanded(len(path) < 2)
        self.blockSignals(False)
        self._restore(previous)

    @staticmethod
    def _label(level: str, value: str | None) -> str:
        if value is None:
            return {
                "machine_type": "(no machine)",
                "section_id": "(no section)",
                "domain": "(no domain)",
                "split": "(no split)",
            }[level]
        return f"section {value}" if level == "section_id" else value

    def mark_stale(self, groups: set[str]) -> None:
        """Name the machine / section nodes whose models were fitted before their clips changed."""
        for item in self._items():
            where = item.data(0, WHERE_ROLE) or {}
            if set(where) == {"machine_type", "section_id"}:
                base = self._label("section_id", where["section_id"])
                stale = group_key(where["machine_type"], where["section_id"]) in groups
                item.setText(0, f"{base} (stale: refit)" if stale else base)
                item.setToolTip(0, "fitted before these clips changed: Train > Fit all detectors" if stale else "")

    def current_where(self) -> dict:
        item = self.currentItem()
        return dict(item.data(0, WHERE_ROLE) or {}) if item is not None else {}

    def choose(self, where: Mapping) -> bool:
        for item in self._items():
            if (item.data(0, WHERE_ROLE) or {}) == dict(where):
                self.setCurrentItem(item)
                return True
        return False

    def _restore(self, where: dict) -> None:
        if where and self.choose(where):
            return
        self.blockSignals(True)
        self.setCurrentItem(self.topLevelItem(0))
        self.blockSignals(False)

    def _items(self):
        stack = [self.topLevelItem(i) for i in range(self.topLevelItemCount())]
        while stack:
            item = stack.pop()
            yield item
            stack += [item.child(i) for i in range(item.childCount())]

    def _chosen(self, current: QTreeWidgetItem | None, previous: QTreeWidgetItem | None) -> None:
        if current is not None:
            self.filter_chosen.emit(dict(current.data(0, WHERE_ROLE) or {}))
