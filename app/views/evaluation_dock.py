"""The evaluation dock's widget (View > Evaluation): the figures table on the left; on the right, for the
selected row, the ROC curves of every detector and the chosen detector's score histogram with its threshold,
and the threshold's controls (a value, a false-positive rate on training normals, back to the fitted one).

It only shows and asks: the window (app/window_evaluation.py) reads the project, stores thresholds as
undoable steps and filters the clip table. While the threshold line is dragged, the table shows the decision
figures it would give (computed by `engine.evaluation.metrics`, as the stored ones are).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.views.evaluation_table import FIXED, EvaluationTableModel, FigureRow
from app.views.score_plots import RocView, ScoreHistogram
from engine.evaluation import curves
from engine.evaluation.metrics import precision_recall_f1


def decision_figures(score_set: curves.ScoreSet, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 per domain at `threshold` (decision: score > threshold), by the names of
    `SectionResult`'s fields."""
    decisions = np.asarray(score_set.scores, dtype=float) > threshold
    domains = np.asarray(score_set.domains)
    labels = np.asarray(score_set.is_anomaly, dtype=bool)
    figures: dict[str, float] = {}
    for domain in ("source", "target"):
        keep = domains == domain
        precision, recall, f1 = precision_recall_f1(labels[keep], decisions[keep])
        figures.update({f"precision_{domain}": precision, f"recall_{domain}": recall, f"f1_{domain}": f1})
    return figures


class EvaluationPanel(QWidget):
    """`threshold_requested(detector, model_id, value)`, `fpr_requested(detector, model_id, fpr)`,
    `reset_requested(detector, model_id)`, `clips_chosen(clip_ids, why)`."""

    threshold_requested = Signal(str, int, float)
    fpr_requested = Signal(str, int, float)
    reset_requested = Signal(str, int)
    clips_chosen = Signal(object, str)
    shown = Signal()  # new figures are shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sets: dict[tuple[str, str, str], curves.ScoreSet] = {}
        self.figure: FigureRow | None = None  # the selected row
        self.summary = QLabel("No scores of labelled test clips yet: fit and score (Train menu).")
        self.summary.setWordWrap(True)
        self.model = EvaluationTableModel()
        self.table = QTableView(objectName="evaluation_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setAlternatingRowColors(True)
        self.table.selectionModel().currentChanged.connect(self._current_changed)

        self.roc = RocView()
        self.roc.point_clicked.connect(lambda _d, ids, why: self.clips_chosen.emit(ids, why))
        self.histogram = ScoreHistogram()
        self.histogram.threshold_moving.connect(self._threshold_moving)
        self.histogram.threshold_dropped.connect(self._threshold_dropped)
        self.histogram.bar_clicked.connect(self.clips_chosen.emit)
        self.detector_box = QComboBox(objectName="histogram_detector", toolTip="The detector whose scores are shown")
        self.detector_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.detector_box.currentTextChanged.connect(self._detector_chosen)
        self.threshold_box = QDoubleSpinBox(objectName="threshold_value", decimals=4, keyboardTracking=False)
        self.threshold_box.setRange(-1e9, 1e9)
        self.threshold_box.setToolTip("The group's decision threshold: a clip scoring above it is an anomaly")
        self.set_value = QPushButton("Set", objectName="set_threshold")
        self.set_value.clicked.connect(lambda: self._request_value(self.threshold_box.value()))
        self.fpr_box = QDoubleSpinBox(objectName="threshold_fpr", decimals=1, suffix=" %", value=5.0)
        self.fpr_box.setRange(0.1, 50.0)
        self.fpr_box.setToolTip("Set the threshold so that this share of held-out training normals is flagged")
        self.set_fpr = QPushButton("Set by FPR", objectName="set_threshold_fpr")
        self.set_fpr.clicked.connect(self._request_fpr)
        # Enter in a box applies it, as the buttons do (app.actions.TypingKeys gives the box the key)
        self.threshold_box.lineEdit().returnPressed.connect(self.set_value.click)
        self.fpr_box.lineEdit().returnPressed.connect(self.set_fpr.click)
        self.reset = QPushButton("Fitted", objectName="reset_threshold", toolTip="Back to the threshold of the fit")
        self.reset.clicked.connect(self._request_reset)

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.detector_box,
            QLabel("threshold"),
            self.threshold_box,
            self.set_value,
            QLabel("training-normal FPR"),
            self.fpr_box,
            self.set_fpr,
            self.reset,
        ):
            controls.addWidget(widget)
        controls.addStretch(1)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.roc)
        plots.addWidget(self.histogram)
        right = QWidget()
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(0, 0, 0, 0)
        right_column.addWidget(plots, 1)
        right_column.addLayout(controls)
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(self.summary)
        left_column.addWidget(self.table, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setSizes([540, 820])  # the table's columns at a laptop's width; the plots the rest
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.splitter)
        self._enable_controls(False)

    # -- filling ---------------------------------------------------------------------------------------------
    def set_data(self, reports: list, score_sets: list[curves.ScoreSet]) -> None:
        """Show `evaluate_project`'s reports and `score_sets`; the selected row and detector stay."""
        kept = self.selected()
        self.sets = {(s.detector, s.machine_type, s.section_id): s for s in score_sets}
        self.model.set_reports(reports)
        clips = max((r.clips for r in reports), default=0)
        if clips:
            self.summary.setText(
                f"{len(reports)} detectors, {clips} labelled test clips. * best of its row; "
                "a detector's cell shows its histogram and threshold."
            )
        else:
            self.summary.setText("No scores of labelled test clips yet: fit and score (Train menu).")
        self.table.resizeColumnsToContents()
        if kept is not None and self.select(*kept):
            pass
        elif self.model.rowCount():  # (the row shown before is gone: not left showing its old figures)
            self.select(self.model.rows[0], self.model.detectors[0] if self.model.detectors else None)
        else:
            self._show_row(None, None)
        self.shown.emit()

    def selected(self) -> tuple[FigureRow, str | None] | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.rows[index.row()], self.detector_box.currentText() or None

    def select(self, figure: FigureRow, detector: str | None) -> bool:
        """Make the cell of `figure`'s row (same machine, section, domain and figure) and `detector` current."""
        for row, candidate in enumerate(self.model.rows):
            if (candidate.machine, candidate.section, candidate.field) == (
                figure.machine,
                figure.section,
                figure.field,
            ):
                column = len(FIXED) + self.model.detectors.index(detector) if detector in self.model.detectors else 0
                index = self.model.index(row, column)
                self.table.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
                self._current_changed(index, QModelIndex())  # also when it was current already: data changed
                self.table.scrollTo(index)
                return True
        return False

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if not current.isValid():
            return
        figure = self.model.rows[current.row()]
        detector = self.model.detector_at(current.column()) or self.detector_box.currentText() or None
        self._show_row(figure, detector)

    def _show_row(self, figure: FigureRow | None, detector: str | None) -> None:
        self.figure = figure
        if figure is None or figure.section == "":  # the official score: no one section to draw
            self.roc.show_sets([], None, self.model.detectors)
            self._fill_detectors([], None)
            self.histogram.show_set(None)
            if figure is not None:
                self.roc.setTitle("ROC: pick a section's row (the official score spans them all)", color="#222")
            self._enable_controls(False)
            return
        sets = [
            self.sets[key]
            for key in ((d, figure.machine, figure.section) for d in self.model.detectors)
            if key in self.sets
        ]
        self.roc.show_sets(sets, figure.roc_domain, self.model.detectors)
        self.roc.setTitle(
            f"ROC of {figure.machine} {figure.section}, "
            + (f"{figure.roc_domain} normals + all anomalies" if figure.roc_domain else "all clips"),
            color="#222",
            size="10pt",
        )
        self._fill_detectors([s.detector for s in sets], detector)

    def _fill_detectors(self, detectors: list[str], chosen: str | None) -> None:
        self.detector_box.blockSignals(True)
        self.detector_box.clear()
        self.detector_box.addItems(detectors)
        if chosen in detectors:
            self.detector_box.setCurrentText(chosen)
        self.detector_box.blockSignals(False)
        self._detector_chosen(self.detector_box.currentText())

    def _detector_chosen(self, detector: str) -> None:
        score_set = self.current_set()
        self.histogram.show_set(score_set)
        usable = score_set is not None and score_set.model_id is not None and score_set.threshold is not None
        self._enable_controls(usable)
        if usable:
            self.threshold_box.blockSignals(True)
            self.threshold_box.setValue(float(score_set.threshold))
            self.threshold_box.blockSignals(False)
            self.histogram.set_threshold(float(score_set.threshold))

    def current_set(self) -> curves.ScoreSet | None:
        figure = self.figure
        detector = self.detector_box.currentText()
        if figure is None or not detector:
            return None
        return self.sets.get((detector, figure.machine, figure.section))

    def _enable_controls(self, on: bool) -> None:
        for widget in (self.threshold_box, self.set_value, self.fpr_box, self.set_fpr, self.reset):
            widget.setEnabled(on)

    # -- thresholds ------------------------------------------------------------------------------------------
    def _threshold_moving(self, value: float) -> None:
        score_set = self.current_set()
        if score_set is None:
            return
        self.model.set_live(
            score_set.detector, score_set.machine_type, score_set.section_id, decision_figures(score_set, value)
        )
        self.histogram.line_label.setText(f"threshold {value:.4g}")

    def _threshold_dropped(self, value: float) -> None:
        self._request_value(value)

    def _request_value(self, value: float) -> None:
        score_set = self.current_set()
        if score_set is not None and score_set.model_id is not None:
            self.threshold_requested.emit(score_set.detector, int(score_set.model_id), float(value))

    def _request_fpr(self) -> None:
        score_set = self.current_set()
        if score_set is not None and score_set.model_id is not None:
            self.fpr_requested.emit(score_set.detector, int(score_set.model_id), self.fpr_box.value() / 100.0)

    def _request_reset(self) -> None:
        score_set = self.current_set()
        if score_set is not None and score_set.model_id is not None:
            self.reset_requested.emit(score_set.detector, int(score_set.model_id))
