"""The evaluation table: one row per machine, section, domain and figure (AUC, pAUC, decision precision /
recall / F1, and the official score last), one column per detector, so detectors compare along a row; the
best value of each row is marked. The figures are `engine.evaluation.report.evaluate_project`'s, the same
that `earmark evaluate` prints; while a threshold is dragged, the decision figures of that detector and
section are shown as they would be (`set_live`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

#: (domain, figure, SectionResult field) of each section's rows, in the order shown.
SECTION_ROWS = (
    ("source", "AUC", "auc_source"),
    ("target", "AUC", "auc_target"),
    ("both", "pAUC", "pauc"),
    ("source", "precision", "precision_source"),
    ("source", "recall", "recall_source"),
    ("source", "F1", "f1_source"),
    ("target", "precision", "precision_target"),
    ("target", "recall", "recall_target"),
    ("target", "F1", "f1_target"),
)
DECISION_FIGURES = ("precision", "recall", "F1")
OFFICIAL = "official score"
FIXED = ("section", "domain", "figure")
BEST_BRUSH = QBrush(QColor("#c8e6c9"))
LIVE_BRUSH = QBrush(QColor("#fff3c4"))


@dataclass(frozen=True)
class FigureRow:
    """What a row of the table shows: `field` of the section's `SectionResult`, or the official score."""

    machine: str
    section: str
    domain: str
    figure: str
    field: str

    @property
    def roc_domain(self) -> str | None:
        """The domain whose ROC curve the row stands for (None: every clip of the section)."""
        return self.domain if self.domain in ("source", "target") else None


def best_columns(values: Sequence[float]) -> set[int]:
    """The positions of the highest defined value (every one of them when tied)."""
    defined = [v for v in values if v is not None and not math.isnan(v)]
    if len(defined) < 2:  # one detector, or one defined figure: nothing is compared
        return set()
    top = max(defined)
    return {i for i, v in enumerate(values) if v is not None and not math.isnan(v) and v >= top - 1e-12}


class EvaluationTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.detectors: list[str] = []
        self.rows: list[FigureRow] = []
        #: (row, detector) -> value
        self.values: dict[tuple[int, str], float] = {}
        #: (detector, machine, section) -> {SectionResult field: value} while a threshold is being dragged
        self.live: dict[tuple[str, str, str], dict[str, float]] = {}

    def set_reports(self, reports: Sequence) -> None:
        """`reports`: `engine.evaluation.report.DetectorReport`s, one per detector."""
        self.beginResetModel()
        self.detectors = [r.detector for r in reports]
        sections = sorted({(s.machine_type, s.section_id) for r in reports for s in r.sections})
        self.rows = [
            FigureRow(machine, section, domain, figure, field)
            for machine, section in sections
            for domain, figure, field in SECTION_ROWS
        ]
        if reports:
            self.rows.append(FigureRow("all", "", "", OFFICIAL, "official"))
        position = {(row.machine, row.section, row.field): i for i, row in enumerate(self.rows)}
        self.values = {}
        for report in reports:
            for s in report.sections:
                for _, _, field in SECTION_ROWS:
                    self.values[(position[(s.machine_type, s.section_id, field)], report.detector)] = getattr(s, field)
            self.values[(len(self.rows) - 1, report.detector)] = report.official
        self.live = {}
        self.endResetModel()

    def set_live(self, detector: str, machine: str, section: str, figures: dict[str, float] | None) -> None:
        """Show `figures` (decision figures by SectionResult field) for one detector and section; None: the
        stored ones again."""
        key = (detector, machine, section)
        if figures is None:
            self.live.pop(key, None)
        else:
            self.live[key] = figures
        if self.detectors:
            self.dataChanged.emit(self.index(0, len(FIXED)), self.index(len(self.rows) - 1, self.columnCount() - 1))

    def value(self, row: int, detector: str) -> float | None:
        figure = self.rows[row]
        live = self.live.get((detector, figure.machine, figure.section))
        if live is not None and figure.field in live:
            return live[figure.field]
        return self.values.get((row, detector))

    def detector_at(self, column: int) -> str | None:
        return self.detectors[column - len(FIXED)] if column >= len(FIXED) else None

    # -- Qt model ---------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(FIXED) + len(self.detectors)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        return FIXED[section] if section < len(FIXED) else self.detectors[section - len(FIXED)]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        figure = self.rows[index.row()]
        column = index.column()
        if column < len(FIXED):
            if role == Qt.ItemDataRole.DisplayRole:
                group = f"{figure.machine} {figure.section}".strip()
                return (group, figure.domain, figure.figure)[column]
            return None
        detector = self.detectors[column - len(FIXED)]
        value = self.value(index.row(), detector)
        live = (detector, figure.machine, figure.section) in self.live and figure.figure in DECISION_FIGURES
        best = column - len(FIXED) in best_columns([self.value(index.row(), d) for d in self.detectors])
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None or math.isnan(value):
                return "-"
            return f"{value:.3f}" + (" *" if best else "")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            return LIVE_BRUSH if live else BEST_BRUSH if best else None
        if role == Qt.ItemDataRole.FontRole and best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            notes = ["the best of this row"] if best else []
            if live:
                notes.append("at the threshold being set (not stored yet)")
            if value is None or math.isnan(value):
                notes.append("undefined: the clips of this row are all of one class (or none were scored)")
            return "; ".join(notes) or None
        return None
