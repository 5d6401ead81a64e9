"""A technician labels with the keyboard: marks a leak with [ and ], commits it with Enter, resizes, moves,
relabels and deletes it, undoes and redoes; every step is in the project database at once. Proposals from a
detector are accepted and rejected with A and R, and N walks the review queue."""

from __future__ import annotations

import sqlite3

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from app.dialogs.label_classes import LabelClassesDialog
from engine.store import labels
from tests.app.test_main_window import anomalous_test_clip, select_clip

Key = Qt.Key
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def manual_rows(window) -> list[tuple]:
    """What a second connection (another process) reads from the project file: committed rows only."""
    with sqlite3.connect(window.project.db_path) as db:
        return db.execute(
            "SELECT region_id, start_s, end_s, label FROM regions WHERE kind = 'manual' ORDER BY region_id"
        ).fetchall()


def press(qtbot, window, key: Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """Keys go where the user's focus is: the clip table, after picking a clip."""
    qtbot.keyClick(window.table.view, key, modifier)


def put_playhead(window, seconds: float) -> None:
    window.playback.seek(seconds)
    window.view.set_playhead(seconds)
    assert window.view.playhead_s == pytest.approx(seconds)


def drag(
    qtbot,
    window,
    start: tuple[float, float],
    end: tuple[float, float],
    modifier=Qt.KeyboardModifier.NoModifier,
    column: int = 0,
) -> None:
    """A mouse drag on a column's spectrogram from (seconds, mel) to (seconds, mel), as the mouse sends it."""
    view, box = window.view.graphics, window.view.panels[column].view_box
    points = [view.mapFromScene(box.mapViewToScene(QPointF(*p))) for p in (start, end)]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind: QEvent.Type, point, button, buttons) -> None:
        point = QPointF(point)
        QApplication.sendEvent(
            view.viewport(), QMouseEvent(kind, point, view.mapToGlobal(point), button, buttons, modifier)
        )

    send(QEvent.Type.MouseButtonPress, points[0], left, left)
    for step in range(1, 11):
        send(QEvent.Type.MouseMove, points[0] + (points[1] - points[0]) * step / 10, none, left)
        qtbot.wait(5)
    send(QEvent.Type.MouseButtonRelease, points[1], left, none)


def clip_with_frames_under_threshold(window) -> str:
    """The most anomalous flagged test clip on whose patch_memory lane the lowest on level (a fifth of the
    frame threshold) proposes more than the default level does: it has frames a little under the threshold
    that no proposal covers yet."""
    from app import clip_data
    from engine.labels.proposals import propose, settings_for
    from engine.store import results

    def covered(lanes, on_ratio: float) -> float:
        found = propose(
            lanes.frame_times,
            lanes.frame_scores,
            settings_for(lanes.frame_threshold, lanes.frame_scores, on_ratio, min(0.9, on_ratio)),
        )
        return sum(p.end_s - p.start_s for p in found)

    rows = [
        r
        for r in results.latest_scores(window.project, "patch_memory", split="test")
        if r.label == "anomaly" and r.decision
    ]
    for row in sorted(rows, key=lambda r: -r.score):
        lanes = clip_data.clip_display(window.project, row.clip_id).lanes["patch_memory"]
        if covered(lanes, 0.2) > covered(lanes, 1.0):
            return row.clip_id
    raise AssertionError("the demo has no flagged clip with frames a little under the threshold")


@pytest.fixture
def labelling(qtbot, window):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    window.table.view.setFocus()
    return window, clip_id


def test_keyboard_flow_create_resize_move_relabel_delete_undo_redo_each_saved_at_once(qtbot, labelling):
    window, clip_id = labelling
    classes = [c.name for c in window.project.label_classes()]
    put_playhead(window, 0.5)
    press(qtbot, window, Key.Key_BracketLeft)
    put_playhead(window, 1.0)
    press(qtbot, window, Key.Key_BracketRight)
    assert window.editor.marks == [0.5, 1.0]
    press(qtbot, window, Key.Key_Return)
    rows = manual_rows(window)
    assert [(s, e, label) for _, s, e, label in rows] == [(0.5, 1.0, classes[0])]
    region_id = rows[0][0]
    # The new region is not left selected: a class key pressed now is for the next region.
    assert window.editor.selected is None and window.editor.marks == [None, None]
    qtbot.waitUntil(lambda: region_id in window.view.panels[0].labels.by_id)  # drawn on the spectrogram
    assert region_id in [r.region_id for r in window.region_table.visible_regions()]  # listed
    assert window.region_table.selected_regions() == []

    window.view.region_clicked.emit(region_id)  # the user clicks it on the spectrogram
    assert [r.region_id for r in window.region_table.selected_regions()] == [region_id]
    put_playhead(window, 1.4)
    press(qtbot, window, Key.Key_BracketRight, CTRL)  # resize: the end to the playhead
    assert manual_rows(window) == [(region_id, 0.5, 1.4, classes[0])]
    press(qtbot, window, Key.Key_2)  # relabel the selected region with the second class, said in the status line
    assert manual_rows(window) == [(region_id, 0.5, 1.4, classes[1])]
    assert window.statusBar().currentMessage() == f"Relabelled 0.50-1.40 s from {classes[0]} to {classes[1]}"
    step = window._step()
    press(qtbot, window, Key.Key_Right, CTRL)
    press(qtbot, window, Key.Key_Right, CTRL)  # two nudges: one undo step
    ((_, start, end, _),) = manual_rows(window)
    assert start == pytest.approx(0.5 + 2 * step) and end == pytest.approx(1.4 + 2 * step)
    press(qtbot, window, Key.Key_Delete)
    assert manual_rows(window) == []

    press(qtbot, window, Key.Key_Z, CTRL)  # the region comes back under its id
    ((rid, start, end, label),) = manual_rows(window)
    assert rid == region_id and label == classes[1] and start == pytest.approx(0.5 + 2 * step)
    press(qtbot, window, Key.Key_Z, CTRL)  # the nudges
    assert manual_rows(window) == [(region_id, 0.5, 1.4, classes[1])]
    press(qtbot, window, Key.Key_Z, CTRL)  # the relabel
    assert manual_rows(window) == [(region_id, 0.5, 1.4, classes[0])]
    press(qtbot, window, Key.Key_Z, CTRL)  # the resize
    assert manual_rows(window) == [(region_id, 0.5, 1.0, classes[0])]
    press(qtbot, window, Key.Key_Z, CTRL)  # the creation
    assert manual_rows(window) == []
    press(qtbot, window, Key.Key_Z, SHIFT | CTRL)  # redo: created again, same id
    assert manual_rows(window) == [(region_id, 0.5, 1.0, classes[0])]
    press(qtbot, window, Key.Key_Y, CTRL)
    assert manual_rows(window) == [(region_id, 0.5, 1.4, classes[0])]
    assert window.editor.stack.count() == 5 and window.editor.stack.index() == 2


def test_overlapping_regions_and_a_time_frequency_box_drawn_in_label_mode(qtbot, labelling):
    window, clip_id = labelling
    press(qtbot, window, Key.Key_E)
    assert window.view.label_mode and window.actions_by_name["label_mode"].isChecked()
    view_box = window.view.panels[0].view_box
    low_mel, high_mel = window.view.mel_range()
    view_box.drawn.emit(0.2, 1.2, None, None)  # a drag across the spectrogram
    span = high_mel - low_mel
    view_box.drawn.emit(0.8, 1.6, low_mel + 0.2 * span, low_mel + 0.6 * span)  # Shift+drag: a box, overlapping
    stored = labels.regions(window.project, clip_id, ("manual",))
    assert [(r.start_s, r.end_s, r.is_box) for r in stored] == [(0.2, 1.2, False), (0.8, 1.6, True)]
    box = stored[1]
    assert 0 < box.low_hz < box.high_hz < window.view.display.sample_rate / 2
    # Dragging a region's edge in label mode is one saved, undoable resize; dragging its body, a move.
    qtbot.waitUntil(lambda: stored[0].region_id in window.view.panels[0].labels.by_id)
    item = window.view.panels[0].labels.by_id[stored[0].region_id]
    assert item.movable
    item.setRegion((0.2, 1.4))
    item.sigRegionChangeFinished.emit(item)  # what the item sends when the mouse button is let go
    assert labels.region(window.project, stored[0].region_id).end_s == pytest.approx(1.4)
    assert window.editor.stack.undoText().startswith("resize")
    window.view.region_edited.emit(box.region_id, 1.0, 1.8, box.low_hz, box.high_hz)
    assert (labels.region(window.project, box.region_id).start_s, window.editor.stack.undoText()) == (1.0, "move")
    press(qtbot, window, Key.Key_Z, CTRL)
    press(qtbot, window, Key.Key_Z, CTRL)
    assert labels.region(window.project, box.region_id).start_s == 0.8
    assert labels.region(window.project, stored[0].region_id).end_s == 1.2
    # Outside label mode nothing moves: a drag pans the view.
    press(qtbot, window, Key.Key_E)
    qtbot.waitUntil(lambda: not window.view.panels[0].labels.by_id[stored[0].region_id].movable)
    # Clicking inside the box's band picks the box (the shorter, more specific region).
    assert window.view.region_at(1.0, low_mel + 0.4 * span).region_id == box.region_id
    assert window.view.region_at(1.0, low_mel + 0.8 * span).region_id == stored[0].region_id


def test_a_mouse_drag_in_label_mode_draws_a_region_and_dragging_it_moves_it(qtbot, labelling):
    window, clip_id = labelling
    middle = sum(window.view.mel_range()) / 2
    drag(qtbot, window, (0.3, middle), (1.1, middle))  # not in label mode: the view pans, nothing is drawn
    assert labels.regions(window.project, clip_id, ("manual",)) == []
    window.view.fit()
    press(qtbot, window, Key.Key_E)
    drag(qtbot, window, (0.3, middle), (1.1, middle))
    (drawn,) = labels.regions(window.project, clip_id, ("manual",))
    assert (drawn.start_s, drawn.end_s) == (pytest.approx(0.3, abs=0.01), pytest.approx(1.1, abs=0.01))
    qtbot.waitUntil(lambda: drawn.region_id in window.view.panels[0].labels.by_id)
    drag(qtbot, window, (0.7, middle), (1.0, middle))  # grab its middle and move it 0.3 s on
    moved = labels.region(window.project, drawn.region_id)
    assert moved.start_s == pytest.approx(drawn.start_s + 0.3, abs=0.01)
    assert moved.duration_s == pytest.approx(drawn.duration_s)
    assert window.editor.stack.undoText() == "move"
    low, high = window.view.mel_range()
    drag(
        qtbot,
        window,
        (1.5, low + 0.2 * (high - low)),
        (1.9, low + 0.5 * (high - low)),
        Qt.KeyboardModifier.ShiftModifier,
    )  # Shift: a time-frequency box
    box = labels.regions(window.project, clip_id, ("manual",))[-1]
    assert box.is_box and box.start_s == pytest.approx(1.5, abs=0.01)


def test_proposals_accept_reject_and_the_review_queue(qtbot, labelling):
    window, _ = labelling
    clip_id = clip_with_frames_under_threshold(window)
    select_clip(qtbot, window, clip_id)
    panel = window.proposal_panel
    panel.detector.setCurrentText("patch_memory")
    press(qtbot, window, Key.Key_P)
    proposals = labels.regions(window.project, clip_id, ("proposal",))
    assert proposals, "the most anomalous clip gets at least one proposal at the model's threshold"
    assert all(p.model_id is not None and 0 < p.confidence <= 1 for p in proposals)
    # Dragging the on level down to its lowest proposes more of the clip, at once.
    covered = sum(p.duration_s for p in proposals)
    panel.on.slider.setValue(panel.on.slider.minimum())
    assert panel.off.value() <= panel.on.value() == pytest.approx(0.2)  # the off level follows (hysteresis)
    qtbot.waitUntil(
        lambda: sum(p.duration_s for p in labels.regions(window.project, clip_id, ("proposal",))) > covered,
        timeout=3000,
    )
    proposals = labels.regions(window.project, clip_id, ("proposal",))

    # Three proposals of the model, as a lower level would give them.
    model_id = proposals[0].model_id
    labels.replace_proposals(
        window.project,
        clip_id,
        model_id,
        [
            labels.Region(clip_id, start, start + 0.2, "LEAK", "proposal", model_id=model_id, confidence=0.7)
            for start in (0.2, 0.8, 1.4)
        ],
    )
    window.refresh_regions()
    press(qtbot, window, Key.Key_N)  # the first pending proposal of the queue
    first = window.editor.selected
    assert labels.region(window.project, first).start_s == 0.2
    press(qtbot, window, Key.Key_A)
    accepted = labels.region(window.project, first)
    assert accepted.kind == "manual" and accepted.model_id == model_id
    second = window.editor.selected  # the clip's next proposal is selected
    assert labels.region(window.project, second).start_s == 0.8
    press(qtbot, window, Key.Key_R)
    with pytest.raises(labels.LabelError):
        labels.region(window.project, second)
    assert labels.region(window.project, window.editor.selected).start_s == 1.4
    press(qtbot, window, Key.Key_Z, CTRL)  # the rejection undone
    assert labels.region(window.project, second).kind == "proposal"
    press(qtbot, window, Key.Key_A, SHIFT)  # both left accepted in one step, undone in one
    assert labels.regions(window.project, clip_id, ("proposal",)) == []
    assert [r.start_s for r in labels.regions(window.project, clip_id, ("manual",))] == [0.2, 0.8, 1.4]
    press(qtbot, window, Key.Key_Z, CTRL)
    assert [r.start_s for r in labels.regions(window.project, clip_id, ("proposal",))] == [0.8, 1.4]
    # Proposing again leaves out what is labelled, and an old rejection can no longer be undone.
    window.editor.select(second)
    press(qtbot, window, Key.Key_R)
    assert window.editor.stack.count() == 2  # accept, reject
    press(qtbot, window, Key.Key_P)
    again = labels.regions(window.project, clip_id, ("proposal",))
    assert again and all(p.end_s <= 0.2 or p.start_s >= 0.4 for p in again)  # cut around the accepted label
    press(qtbot, window, Key.Key_Z, CTRL)
    assert labels.regions(window.project, clip_id, ("proposal",)) == again
    assert window.editor.stack.count() == 1  # the stale step was dropped; the accept is still there


def test_dragging_the_on_level_on_the_lane_re_proposes(qtbot, labelling):
    window, _ = labelling
    clip_id = clip_with_frames_under_threshold(window)
    select_clip(qtbot, window, clip_id)
    window.controls.first.setCurrentText("patch_memory")
    window.proposal_panel.detector.setCurrentText("patch_memory")
    lanes = window.view.display.lanes["patch_memory"]
    on_line = window.view.panels[0].levels["on"]
    assert on_line.isVisible() and on_line.value() == pytest.approx(lanes.frame_threshold)  # ratio 1.0
    press(qtbot, window, Key.Key_P)
    before = labels.regions(window.project, clip_id, ("proposal",))
    lowest = float(lanes.frame_scores.min())
    # dragged down below the lane's lowest frame, by more than the on slider's step (0.01 of the threshold)
    level = lowest - 0.02 * abs(lanes.frame_threshold)
    on_line.setValue(level)
    expected = max(0.2, level / lanes.frame_threshold)  # as a multiple of the threshold, within the slider's range
    assert window.proposal_panel.on.value() == pytest.approx(expected, abs=0.01)
    qtbot.waitUntil(
        lambda: (
            sum(r.duration_s for r in labels.regions(window.project, clip_id, ("proposal",)))
            > sum(r.duration_s for r in before)
        ),
        timeout=3000,
    )
    window.controls.first.setCurrentText("knn")  # another detector's lane: no proposal levels on it
    assert not on_line.isVisible()


def test_proposing_another_clip_keeps_a_rejection_undoable(qtbot, labelling):
    window, clip_id = labelling
    window.proposal_panel.detector.setCurrentText("patch_memory")
    press(qtbot, window, Key.Key_P)
    (proposal, *_) = labels.regions(window.project, clip_id, ("proposal",))
    window.editor.select(proposal.region_id)
    press(qtbot, window, Key.Key_R)
    other = next(
        r.clip.clip_id for r in window.table.model.rows if r.clip.clip_id != clip_id and "patch_memory" in r.scores
    )
    select_clip(qtbot, window, other)
    press(qtbot, window, Key.Key_P)  # the other clip's proposals: this clip's set is unchanged
    press(qtbot, window, Key.Key_Z, CTRL)
    assert labels.region(window.project, proposal.region_id).kind == "proposal"
    assert window.view.display.clip_id == clip_id  # the undo shows where it happened


def test_keys_typed_into_inputs_go_to_them_not_to_the_shortcuts(qtbot, labelling):
    window, clip_id = labelling
    put_playhead(window, 0.5)
    window.editor.mark_start(0.5)
    window.editor.mark_end(1.0)
    box = window.proposal_panel.merge_gap.box
    box.setFocus()
    qtbot.keyClick(box, Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(box, "0.5")
    qtbot.keyClick(box, Key.Key_Return)  # applies the number, adds no region
    assert box.value() == 0.5 and labels.regions(window.project, clip_id, ("manual",)) == []
    qtbot.keyClick(box, Key.Key_Up)  # steps the number, does not change clip
    assert box.value() == pytest.approx(0.55) and window.view.display.clip_id == clip_id
    window.table.filter_box.setFocus()
    qtbot.keyClicks(window.table.filter_box, "anomaly 2")  # letters and digits are text, not shortcuts
    qtbot.keyClick(window.table.filter_box, Key.Key_Return)
    assert window.table.filter_box.text() == "anomaly 2" and labels.regions(window.project, clip_id, ("manual",)) == []
    assert window.editor.marks == [0.5, 1.0] and not window.view.label_mode
    window.controls.first.setFocus()  # a drop-down that has the focus leaves the labelling keys alone
    press_on = window.controls.first
    qtbot.keyClick(press_on, Key.Key_E)
    assert window.view.label_mode


def test_renaming_the_current_class_keeps_drawing_with_it(qtbot, labelling):
    window, clip_id = labelling
    window.actions_by_name["label_classes"].trigger()
    dialog = window.findChild(LabelClassesDialog, "label_classes")
    first = window.project.label_classes()[0].name
    assert window.editor.create(0.1, 0.3)
    assert dialog.rename_class(first, "HISS")
    assert window.editor.current_class == "HISS" and window.editor.stack.count() == 0  # history restarts
    assert window.editor.create(0.5, 0.7)
    assert [r.label for r in labels.regions(window.project, clip_id, ("manual",))] == ["HISS", "HISS"]
    assert first not in [c.name for c in window.project.label_classes()]
    dialog.close()


def test_region_table_filters_jumps_and_plays(qtbot, labelling):
    window, clip_id = labelling
    editor = window.editor
    for start, end in ((0.1, 0.3), (0.6, 0.9)):
        assert editor.create(start, end)
    press(qtbot, window, Key.Key_Escape)  # nothing selected: a class key only chooses the next regions' class
    press(qtbot, window, Key.Key_3)
    assert editor.create(1.0, 1.5)
    table = window.region_table
    truth = window.project.clip(clip_id).anomaly_regions
    assert table.proxy.rowCount() == 3 + len(truth)
    table.label_box.setCurrentText(window.project.label_classes()[2].name)
    assert [r.start_s for r in table.visible_regions()] == [1.0]
    table.label_box.setCurrentText("(all)")
    table.kind_box.setCurrentText("truth")
    assert [(r.start_s, r.end_s) for r in table.visible_regions()] == list(truth)
    table.kind_box.setCurrentText("manual")
    # A click jumps: the region is selected on the spectrogram and the playhead goes to its start.
    target = table.proxy.index(1, 1)
    chosen = table.visible_regions()[1]
    table.view.clicked.emit(target)
    assert editor.selected == chosen.region_id == window.view.selected_region
    assert window.view.playhead_s == pytest.approx(chosen.start_s)
    # A double click plays just that region.
    table.view.doubleClicked.emit(target)
    assert window.playback.playing and window.playback.range == pytest.approx((chosen.start_s, chosen.end_s))
    # With "All clips", another clip's region is listed with its clip's name, and a click opens that clip.
    other = next(c.clip_id for c in window.project.clips(split="test") if c.clip_id != clip_id)
    labels.add_region(window.project, labels.Region(other, 0.2, 0.4, "LEAK"))
    table.whole_project.setChecked(True)
    row = next(i for i, r in enumerate(table.visible_regions()) if r.clip_id == other)
    with qtbot.waitSignal(window.clip_shown, timeout=10000):
        table.view.clicked.emit(table.proxy.index(row, 0))
    assert window.view.display.clip_id == other


def test_labels_exported_from_the_window_and_imported_back_with_bad_lines_reported(qtbot, labelling, tmp_path):
    window, clip_id = labelling
    editor = window.editor
    assert editor.create(0.1, 0.4) and editor.create(0.3, 0.9, 300.0, 2000.0) and editor.create(1.2, 1.8)
    written = window.write_labels(tmp_path / "mine.txt", "audacity")  # the shown clip, as Audacity labels
    assert written == [tmp_path / "mine.txt"]
    text = (tmp_path / "mine.txt").read_text()
    assert text.splitlines()[0] == f"0.100000\t0.400000\t{editor.current_class}"
    assert "\\\t300.000000\t2000.000000" in text  # the box's frequency line
    # Only the rows selected in the region table.
    table = window.region_table
    table.kind_box.setCurrentText("manual")
    table.view.selectRow(2)
    chosen = table.selected_regions()
    assert window.write_labels(tmp_path / "chosen.csv", "csv", chosen) == [tmp_path / "chosen.csv"]
    assert len((tmp_path / "chosen.csv").read_text().splitlines()) == 2  # the header and one region
    # A colleague's file for this clip, named as they liked, with one bad line: read onto the shown clip.
    (tmp_path / "colleague.txt").write_text(text + "2.5\tnot a time\tLEAK\n1.9\t1.95\tHISS\n")
    report = window.read_labels([tmp_path / "colleague.txt"])
    assert len(report.added) == 1 and report.duplicates == 3  # HISS is new; the three are there already
    assert [p.split(":")[1] for p in report.problems] == ["5"]  # the bad line, by number
    assert window.findChild(QMessageBox, "label_problems").isVisible()
    assert "HISS" in [c.name for c in window.project.label_classes()]  # a new class, with its own key
    assert [r.label for r in labels.regions(window.project, clip_id, ("manual",))][-1] == "HISS"


def test_label_classes_edited_from_the_label_menu_rename_the_regions_and_the_keys(qtbot, labelling):
    window, clip_id = labelling
    assert window.editor.create(0.2, 0.6)  # labelled with the first class
    window.actions_by_name["label_classes"].trigger()
    dialog = window.findChild(LabelClassesDialog, "label_classes")
    first = window.project.label_classes()[0].name
    assert dialog.rename_class(first, "HISS") and dialog.move_class("HISS", 1)
    assert window.actions_by_name["class_2"].text() == "Label as HISS"
    assert [r.label for r in window.view.display.regions] == ["HISS"]
    assert [r.label for r in window.region_table.model.regions if r.kind == "manual"] == ["HISS"]
    assert dialog.recolour_class("HISS", "#00ff00")
    assert window.view.display.colours["HISS"] == "#00ff00"
    dialog.close()


def test_the_review_queue_visits_flagged_or_unlabelled_clips_in_the_tables_order(qtbot, labelling):
    window, _ = labelling
    panel = window.proposal_panel
    order = window.table.visible_clip_ids()
    clip_id = order[0]  # the queue runs forward (it does not wrap): start from the table's first clip
    select_clip(qtbot, window, clip_id)
    start = order.index(clip_id)
    labelled = order[start + 1]
    labels.add_region(window.project, labels.Region(labelled, 0.1, 0.2, "LEAK"))
    panel.review_mode.setCurrentIndex(panel.review_mode.findData("unlabelled"))
    panel.play_on_arrival.setChecked(True)
    press(qtbot, window, Key.Key_N)
    assert window.view.display.clip_id == order[start + 2]  # the labelled clip is skipped
    assert window.playback.playing  # and the clip plays on arrival
    press(qtbot, window, Key.Key_N, SHIFT)
    assert window.view.display.clip_id == clip_id
    panel.play_on_arrival.setChecked(False)
    panel.review_mode.setCurrentIndex(panel.review_mode.findData("flagged"))
    detector = window.controls.first.currentText()
    flagged = [
        row.clip.clip_id for row in window.table.model.rows if detector in row.scores and row.scores[detector].decision
    ]
    expected = next(c for c in order[start + 1 :] if c in flagged)
    press(qtbot, window, Key.Key_N)
    assert window.view.display.clip_id == expected
