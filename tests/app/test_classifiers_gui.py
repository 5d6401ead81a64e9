"""Training from labels drawn in the window, end to end: a technician opens a project of unlabelled pipe
recordings, marks whole clips as LEAK or NORMAL with the keyboard, trains the leak classifier from the Train
menu's call, and gets its leak-probability lane, its proposals and its results dialog."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.data.importers import import_source
from engine.data.leak_toy import generate_leaks
from engine.labels.proposals import lane_proposals
from engine.store import Project, labels, results
from tests.app.test_labelling import manual_rows, press, put_playhead
from tests.app.test_main_window import select_clip

Key = Qt.Key
#: Each file with its class key: LEAK is class 1, NORMAL class 2. The *_000 files are the test split; the
#: *_003 files stay unlabelled.
MARKED = {
    "leak_000": Key.Key_1,
    "leak_001": Key.Key_1,
    "leak_002": Key.Key_1,
    "normal_000": Key.Key_2,
    "normal_001": Key.Key_2,
    "normal_002": Key.Key_2,
}


@pytest.fixture
def leak_window(qtbot, tmp_path):
    from app.main_window import MainWindow

    source = generate_leaks(tmp_path / "pipes", files_per_class=4, duration_s=4.0, seed=7)
    with Project.create(tmp_path / "survey") as project:
        import_source(project, source)  # audio and metadata only: no labels yet
    win = MainWindow(use_audio=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.job_ended, timeout=10000):
        assert win.open_project(tmp_path / "survey")
    yield win
    win.shutdown()
    assert win.engine.isFinished()


def test_labels_drawn_with_the_keyboard_train_the_leak_classifier_whose_lane_and_proposals_appear(qtbot, leak_window):
    window = leak_window
    for clip_id, class_key in MARKED.items():
        select_clip(qtbot, window, clip_id)
        window.table.view.setFocus()
        put_playhead(window, 0.0)
        press(qtbot, window, Key.Key_BracketLeft)
        put_playhead(window, window.project.clip(clip_id).duration_s)
        press(qtbot, window, Key.Key_BracketRight)
        press(qtbot, window, class_key)
        press(qtbot, window, Key.Key_Return)
    assert sorted(label for *_, label in manual_rows(window)) == ["LEAK"] * 3 + ["NORMAL"] * 3

    with qtbot.waitSignal(window.job_ended, timeout=120000) as ended:
        job = window.train_leak(["binary"], {"epochs": "8", "batch_size": "64"})
    assert ended.args == [job.id, "done"], job.error
    # The trained model is the project's detector leak_binary, with a score for every clip.
    assert "leak_binary" in results.fitted_detectors(window.project)
    scores = {r.clip_id: r for r in results.latest_scores(window.project, "leak_binary")}
    assert len(scores) == 20
    assert [window.controls.first.itemText(i) for i in range(window.controls.first.count())] == ["leak_binary"]

    # The held-out leak file (test split, never trained on) shows its leak probability as the lane.
    select_clip(qtbot, window, "leak_000")
    panel = window.view.panels[0]
    stored = results.load_lanes(window.project, scores["leak_000"].map_artifact)
    x, y = panel.curve.getData()
    assert np.allclose(x, stored.frame_times) and np.allclose(y, stored.frame_scores)
    assert ((y >= 0) & (y <= 1)).all() and "leak_binary" in panel.plot.titleLabel.text
    normal = results.load_lanes(window.project, scores["normal_000"].map_artifact).frame_scores
    assert y.mean() > normal.mean()  # it learnt which is which

    # On an unlabelled leak file, proposals for the labelling flow come from the lane at the model's threshold.
    select_clip(qtbot, window, "leak_003")
    window.proposal_panel.detector.setCurrentText("leak_binary")
    window.table.view.setFocus()
    press(qtbot, window, Key.Key_P)
    proposed = labels.regions(window.project, "leak_003", ("proposal",))
    record = results.latest_models(window.project, "leak_binary")[results.ALL_GROUPS]
    assert results.frame_threshold(window.project, record) == 0.5
    lane = results.load_lanes(window.project, scores["leak_003"].map_artifact)
    expected = lane_proposals("leak_003", 4.0, lane.frame_times, lane.frame_scores, 0.5, record.model_id, "LEAK")
    assert proposed and [(p.start_s, p.end_s, p.label) for p in proposed] == [
        (p.start_s, p.end_s, p.label) for p in expected
    ]
    assert all(p.model_id == record.model_id and 0.5 <= p.confidence <= 1 for p in proposed)

    # Train > Classifier results: the curves and the confusion matrix of the validation files.
    dialog = window.classifier_results_dialog()
    assert dialog.choice.currentText() == "leak_binary"
    assert len(dialog.losses.getPlotItem().listDataItems()) == 2
    epochs = dialog.losses.getPlotItem().listDataItems()[0].getData()[0]
    assert list(epochs) == list(range(1, 9))
    cells = [int(dialog.matrix.item(r, c).text()) for r in range(2) for c in range(2)]
    assert sum(cells) == 2  # leak_000 and normal_000, the files of the test split
    dialog.close()
