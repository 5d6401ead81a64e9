"""Train > Training curves...: an analyst opens a project where dcase_ae was fitted, a leak classifier trained
and a debug run made with the encoder frozen, picks each run from the list and reads its loss per part and
gradient norm per branch; a project where nothing was trained yet says so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.files import safe_name
from engine.store import Project, results

GROUP = "fan/section_00"
#: Epoch rows as the training loop writes them into history.json.
AE_ROWS = [
    {
        "epoch": e,
        "train_loss": 2.0 / e,
        "loss_reconstruction": 2.0 / e,
        "grad_norm_encoder": 1.5 / e,
        "grad_norm_decoder": 3.0 / e,
        "seconds": 0.5,
    }
    for e in (1, 2, 3)
]
FROZEN_ROWS = [
    {
        "epoch": e,
        "train_loss": 1.0 + 1 / e,
        "loss_reconstruction": 1.0 + 1 / e,
        "grad_norm_encoder": 0.0,
        "grad_norm_decoder": 0.8 / e,
        "seconds": 0.4,
    }
    for e in (1, 2)
]
#: A classifier's rows from before gradient norms were logged: validation figures, no grad_norm_*.
LEAK_ROWS = [
    {
        "epoch": e,
        "train_loss": 0.7 / e,
        "train_accuracy": 0.5 + 0.1 * e,
        "val_loss": 0.8 / e,
        "file_leak_f1": 0.4 + 0.2 * e,
    }
    for e in (1, 2)
]


def write_histories(folder: Path) -> Path:
    with Project.create(folder) as project:
        results.add_model(
            project,
            "dcase_ae",
            GROUP,
            {},
            1.0,
            {},
            write=lambda path: (path / "history.json").write_text(json.dumps(AE_ROWS)),
        )
        artifacts = project.artifacts
    debug = artifacts / "logs" / "debug_freeze" / "dcase_ae" / safe_name(GROUP) / "encoder"
    debug.mkdir(parents=True)
    (debug / "history.json").write_text(json.dumps(FROZEN_ROWS))
    (debug / "run.json").write_text(
        json.dumps({"detector": "dcase_ae", "group": GROUP, "frozen": "encoder", "epochs": 2})
    )
    fold = artifacts / "training" / "dcase_ae" / safe_name(GROUP) / "fold_1"  # a threshold fold's network
    fold.mkdir(parents=True)
    (fold / "history.json").write_text(json.dumps(AE_ROWS[:2]))
    leak = artifacts / "classifiers" / "leak_binary"
    leak.mkdir(parents=True)
    (leak / "history.json").write_text(json.dumps(LEAK_ROWS))
    damaged = artifacts / "training" / "dcase_ae" / "broken"
    damaged.mkdir(parents=True)
    (damaged / "history.json").write_text('[{"epoch": 1, "train_')
    return folder


@pytest.fixture
def project_folder(tmp_path) -> Path:
    return write_histories(tmp_path / "trained")


def open_curves(qtbot, window):
    action = next(a for a in window.menuBar().actions() if a.text() == "&Train").menu()
    entry = next(a for a in action.actions() if a.objectName() == "training_curves")
    entry.trigger()
    from app.training_curves import TrainingCurvesDialog

    dialog = window.findChild(TrainingCurvesDialog, "training_curves")
    qtbot.waitExposed(dialog)
    return dialog


def test_every_trained_run_is_listed_by_name_and_shows_its_loss_and_gradient_curves(qtbot, window):
    dialog = open_curves(qtbot, window)

    names = [dialog.runs_list.item(i).text() for i in range(dialog.runs_list.count())]
    assert names == [
        "dcase_ae · fan/section_00 · model 1",
        "dcase_ae · fan/section_00 · training folder, fold 1",
        "leak_binary · training folder",
        "dcase_ae · fan/section_00 · debug run, encoder frozen",
    ]
    assert "training/dcase_ae/broken/history.json" in dialog.unreadable.text()  # named, not shown

    # The fitted model: loss per part beside the total, gradient norm per branch, nothing else.
    assert dialog.curves(dialog.losses) == {
        "training loss (total)": ([1.0, 2.0, 3.0], [r["train_loss"] for r in AE_ROWS]),
        "reconstruction": ([1.0, 2.0, 3.0], [r["loss_reconstruction"] for r in AE_ROWS]),
    }
    assert dialog.curves(dialog.norms) == {
        "encoder": ([1.0, 2.0, 3.0], [r["grad_norm_encoder"] for r in AE_ROWS]),
        "decoder": ([1.0, 2.0, 3.0], [r["grad_norm_decoder"] for r in AE_ROWS]),
    }
    assert dialog.figures.isHidden()

    # The debug run: the frozen encoder's gradient is a flat zero.
    dialog.runs_list.setCurrentRow(3)
    norms = dialog.curves(dialog.norms)
    assert norms["encoder"] == ([1.0, 2.0], [0.0, 0.0]) and norms["decoder"][1] == [0.8, 0.4]
    assert "2 epoch(s)" in dialog.summary.text()

    # The classifier: its validation loss with the losses, its other figures in their own plot, and the
    # gradient plot says it has none.
    dialog.runs_list.setCurrentRow(2)
    assert set(dialog.curves(dialog.losses)) == {"training loss (total)", "validation loss"}
    assert dialog.curves(dialog.norms) == {}
    assert "not recorded" in dialog.norms.getPlotItem().titleLabel.text
    assert not dialog.figures.isHidden()
    figures = dialog.curves(dialog.figures)
    assert figures["file leak f1"][1] == pytest.approx([0.6, 0.8]) and "train accuracy" in figures


def test_a_project_where_nothing_was_trained_says_so(qtbot, tmp_path):
    from app.training_curves import TrainingCurvesDialog
    from engine.histories import training_histories

    with Project.create(tmp_path / "fresh") as project:
        dialog = TrainingCurvesDialog(training_histories(project))
    qtbot.addWidget(dialog)
    dialog.show()

    assert dialog.runs_list.count() == 0
    assert dialog.empty.isVisible() and "Nothing has been trained" in dialog.empty.text()


def test_a_run_with_gaps_draws_what_it_has(qtbot, tmp_path):
    """A figure missing from some rows (validation every other epoch) leaves gaps, not a wrong line."""
    from app.training_curves import TrainingCurvesDialog
    from engine.histories import training_histories

    folder = tmp_path / "gaps"
    with Project.create(folder) as project:
        run = project.artifacts / "training" / "dcase_ae" / "x"
        run.mkdir(parents=True)
        (run / "history.json").write_text(
            json.dumps([{"epoch": 1, "train_loss": 1.0, "val_auc": 0.6}, {"epoch": 2, "train_loss": 0.5}])
        )
        dialog = TrainingCurvesDialog(training_histories(project))
    qtbot.addWidget(dialog)

    x, y = dialog.curves(dialog.figures)["val auc"]
    assert x == [1.0, 2.0] and y[0] == 0.6 and math.isnan(y[1])
