"""Train > Training curves...: the per-epoch curves of every trained model of the project (the trained
detectors dcase_ae and ast_ae, the classifiers, `earmark debug freeze` runs): loss per part with the training
loss, gradient norm per branch, and the validation figures where a run has them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.histories import Histories, TrainingHistory

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: Figures of a row that are not curves.
NOT_CURVES = {"epoch", "seconds"}
EMPTY = (
    "Nothing has been trained in this project yet. Training curves appear here once a detector that "
    "trains a network (dcase_ae, ast_ae) is fitted, a classifier is trained (Train > Train leak classifier, "
    "Train sound classifier) or `earmark debug freeze` has run."
)


def loss_keys(keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k == "train_loss" or k.startswith("loss_") or k.endswith("_loss")]


def norm_keys(keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k.startswith("grad_norm_")]


def curve_name(key: str) -> str:
    """The legend's name of a figure: `loss_latent` -> "latent", `grad_norm_encoder` -> "encoder"."""
    if key == "train_loss":
        return "training loss (total)"
    if key == "val_loss":
        return "validation loss"
    for prefix in ("loss_", "grad_norm_"):
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    return key.replace("_", " ")


class TrainingCurvesDialog(QDialog):
    """A list of runs on the left; the chosen run's curves on the right."""

    def __init__(self, histories: Histories, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Training curves")
        self.resize(1100, 680)
        self.runs = list(histories.found)
        self.runs_list = QListWidget()
        self.runs_list.addItems([run.name for run in self.runs])
        self.runs_list.setWordWrap(True)  # a run's name is long: detector, group and which run
        self.runs_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.losses = self._plot("Loss per part")
        self.norms = self._plot("Gradient norm per branch")
        self.figures = self._plot("Validation figures")
        plots = QWidget()
        column = QVBoxLayout(plots)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.summary)
        for plot in (self.losses, self.norms, self.figures):
            column.addWidget(plot, 1)
        splitter = QSplitter()
        splitter.addWidget(self.runs_list)
        splitter.addWidget(plots)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([300, 800])
        self.empty = QLabel(EMPTY)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty, 1)
        layout.addWidget(splitter, 1)
        self.unreadable = QLabel("Not shown, unreadable: " + ", ".join(str(p) for p in histories.unreadable))
        self.unreadable.setWordWrap(True)
        self.unreadable.setVisible(bool(histories.unreadable))
        layout.addWidget(self.unreadable)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(buttons)
        layout.addLayout(row)
        self.empty.setVisible(not self.runs)
        splitter.setVisible(bool(self.runs))
        self.runs_list.currentRowChanged.connect(self.show_run)
        if self.runs:
            self.runs_list.setCurrentRow(0)

    def _plot(self, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setBackground("w")
        plot.addLegend(offset=(-10, 10))
        plot.setLabel("bottom", "epoch")
        plot.showGrid(x=True, y=True, alpha=0.3)
        plot.setProperty("title", title)
        return plot

    def show_run(self, index: int) -> None:
        if not 0 <= index < len(self.runs):
            return
        run = self.runs[index]
        keys = [k for k in run.figures() if k not in NOT_CURVES and any(not math.isnan(v) for v in run.values(k))]
        losses, norms = loss_keys(keys), norm_keys(keys)
        others = [k for k in keys if k not in losses and k not in norms]
        seconds = sum(v for v in run.values("seconds") if not math.isnan(v))
        self.summary.setText(
            f"{run.name}: {len(run.rows)} epoch(s)"
            + (f", {seconds:.1f} s of training" if seconds else "")
            + f"\n{run.path}"
        )
        self._draw(self.losses, run, losses, "no losses recorded")
        self._draw(self.norms, run, norms, "not recorded for this run")
        self._draw(self.figures, run, others, "")
        self.figures.setVisible(bool(others))

    def _draw(self, plot: pg.PlotWidget, run: TrainingHistory, keys: list[str], missing: str) -> None:
        plot.clear()
        title = plot.property("title")
        plot.setTitle(title if keys or not missing else f"{title} ({missing})")
        epochs = run.epochs
        for index, key in enumerate(keys):
            colour = COLOURS[index % len(COLOURS)]
            plot.plot(
                epochs,
                run.values(key),
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                symbolPen=None,
                name=curve_name(key),
                connect="finite",
            )
        plot.enableAutoRange()

    def curves(self, plot: pg.PlotWidget) -> dict[str, tuple[list[float], list[float]]]:
        """What `plot` shows: each curve's legend name with its points."""
        found = {}
        for item in plot.listDataItems():
            x, y = item.getData()
            found[item.name()] = ([] if x is None else list(map(float, x)), [] if y is None else list(map(float, y)))
        return found
