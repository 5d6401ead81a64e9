"""Train > Classifier results...: the training curves of each trained classifier (loss, and the figure that
chose the best epoch) and its confusion matrix on the validation data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:  # the training modules load only when a classifier is trained or its results are shown
    from engine.classifiers.reports import TrainedRun

CURVES = (("train_loss", "training loss", "#1f77b4"), ("val_loss", "validation loss", "#ff7f0e"))


class ClassifierResultsDialog(QDialog):
    def __init__(self, runs: Sequence[TrainedRun], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Classifier results")
        self.resize(980, 560)
        self.runs = list(runs)
        self.choice = QComboBox()
        self.choice.addItems([r.name for r in self.runs])
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.losses = pg.PlotWidget(title="Loss per epoch")
        self.scores = pg.PlotWidget(title="Validation figures per epoch")
        for plot in (self.losses, self.scores):
            plot.setBackground("w")
            plot.addLegend(offset=(-10, 10))
            plot.setLabel("bottom", "epoch")
            plot.showGrid(x=True, y=True, alpha=0.3)
        self.scores.setYRange(0, 1.02)
        self.matrix = QTableWidget()
        self.matrix_title = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        plots = QVBoxLayout()
        plots.addWidget(self.losses)
        plots.addWidget(self.scores)
        right = QVBoxLayout()
        right.addWidget(self.matrix_title)
        right.addWidget(self.matrix)
        body = QHBoxLayout()
        body.addLayout(plots, 3)
        body.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.choice)
        layout.addWidget(self.summary)
        layout.addLayout(body)
        layout.addWidget(buttons)
        self.choice.currentIndexChanged.connect(self.show_run)
        if not self.runs:
            self.summary.setText(
                "No classifier has been trained in this project yet: Train > Train leak classifier "
                "or Train sound classifier."
            )
        self.show_run(0)

    def show_run(self, index: int) -> None:
        if not 0 <= index < len(self.runs):
            return
        run = self.runs[index]
        self.summary.setText("\n".join(run.lines))
        epochs = [row["epoch"] for row in run.history]
        self.losses.clear()
        self.scores.clear()
        for key, name, colour in CURVES:
            self.losses.plot(epochs, [row[key] for row in run.history], pen=pg.mkPen(colour, width=2), name=name)
        scores = (
            (run.metric, "#2ca02c"),
            ("val_accuracy" if "val_accuracy" in run.history[0] else "accuracy", "#9467bd"),
        )
        for key, colour in scores:
            self.scores.plot(
                epochs,
                [row[key] for row in run.history],
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                name=key.replace("_", " "),
            )
        self.scores.addItem(pg.InfiniteLine(run.best_epoch, pen=pg.mkPen("#555", style=pg.QtCore.Qt.PenStyle.DashLine)))
        self._fill_matrix(run)

    def _fill_matrix(self, run: TrainedRun) -> None:
        self.matrix_title.setText(f"Confusion matrix ({run.confusion_of}): rows are the truth, columns the prediction")
        n = len(run.labels)
        self.matrix.clear()
        self.matrix.setRowCount(n)
        self.matrix.setColumnCount(n)
        self.matrix.setHorizontalHeaderLabels(run.labels)
        self.matrix.setVerticalHeaderLabels(run.labels)
        largest = max((max(row) for row in run.confusion), default=0) or 1
        for r, row in enumerate(run.confusion):
            for c, value in enumerate(row):
                item = QTableWidgetItem(str(value))
                shade = int(255 - 170 * value / largest)
                item.setBackground(QBrush(QColor(shade, shade, 255) if r == c else QColor(255, shade, shade)))
                self.matrix.setItem(r, c, item)
        self.matrix.resizeColumnsToContents()
