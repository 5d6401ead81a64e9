"""The window as a user drives it: open the demo project, pick a clip, look at its map and lanes, switch
overlays, drop files, start a fit and cancel it, and the keyboard shortcuts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMessageBox

from engine.store import job_log, results
from tests.app.conftest import write_tone


def select_clip(qtbot, window, clip_id: str) -> None:
    with qtbot.waitSignal(window.clip_shown, timeout=10000, check_params_cb=lambda shown: shown == clip_id):
        assert window.table.select(clip_id)


def anomalous_test_clip(window) -> str:
    rows = [r for r in results.latest_scores(window.project, "patch_memory", split="test") if r.label == "anomaly"]
    # a short event: a stationary fault's region is the whole clip, with nothing around it to tell apart
    with_regions = {
        c.clip_id
        for c in window.project.clips(split="test", label="anomaly")
        if c.anomaly_regions and c.attributes.get("anomaly_kind") != "stationary"
    }
    return max((r for r in rows if r.clip_id in with_regions), key=lambda r: r.score).clip_id


def drop(window, paths: list[Path]) -> None:
    """What Qt delivers when files from a file manager are dropped on the window: drag enter, then drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    where = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(
        where.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    window.dropEvent(
        QDropEvent(where, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    )


def test_the_demo_project_opens_with_its_data_set_tree_and_every_detector_as_a_column(window):
    clips = window.project.clips()
    root = window.tree.topLevelItem(0)
    assert root.text(0) == "All clips" and root.text(1) == str(len(clips))
    assert sorted(root.child(i).text(0) for i in range(root.childCount())) == ["fan", "valve"]
    assert window.table.model.rowCount() == len(clips)
    headers = [
        window.table.model.headerData(c, Qt.Orientation.Horizontal) for c in range(window.table.model.columnCount())
    ]
    assert {"dcase_ae", "ensemble", "knn", "patch_memory"} <= set(headers)
    assert headers[-1] == "decision (patch_memory)"
    # Choosing a node filters the table to it.
    valve = next(root.child(i) for i in range(root.childCount()) if root.child(i).text(0) == "valve")
    window.tree.setCurrentItem(valve)
    assert window.table.proxy.rowCount() == int(valve.text(1)) == len(window.project.clips(machine_type="valve"))


def test_selecting_a_clip_shows_its_spectrogram_map_lane_and_truth_regions(qtbot, window):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    view, clip = window.view, window.project.clip(clip_id)
    tile = view.overview
    assert tile.db.shape[0] == view.settings.n_mels and tile.db.dtype == np.float32
    assert abs(tile.end_s - clip.duration_s) < 0.05
    panel = view.panels[0]
    assert panel.map_image.isVisible() and panel.map_image.image is not None
    stored = results.load_lanes(
        window.project, results.clip_scores(window.project, clip_id)[clip_id]["patch_memory"].map_artifact
    )
    x, y = panel.curve.getData()
    assert np.allclose(x, stored.frame_times) and np.allclose(y, stored.frame_scores)
    assert len(panel.truth) == len(clip.anomaly_regions) > 0
    assert window.caption.text().startswith(Path(clip.path).name)
    # Each detector shows its own map and lane: knn's replace patch_memory's.
    shown = panel.map_image.image.copy()
    window.controls.first.setCurrentText("knn")
    assert panel.map_image.isVisible() and not np.array_equal(panel.map_image.image, shown, equal_nan=True)
    assert panel.curve.getData()[0].size > 0 and "knn" in panel.plot.titleLabel.text


def test_a_lane_stored_without_a_map_is_shown_alone(qtbot, window):
    """Scores stored before a detector gave maps keep their lane: it is shown, and the map and its colour bar
    go away."""
    clip_id = anomalous_test_clip(window)
    artifact = results.clip_scores(window.project, clip_id)[clip_id]["knn"].map_artifact
    lanes = results.load_lanes(window.project, artifact)
    lanes.anomaly_map = None  # as a score stored before the detector gave maps
    np.savez(window.project.folder / artifact, **lanes.to_arrays())
    select_clip(qtbot, window, clip_id)
    panel = window.view.panels[0]
    window.controls.first.setCurrentText("knn")
    assert not panel.map_image.isVisible() and not panel.colour_bar.isVisible()
    assert panel.curve.getData()[0].size > 0 and "knn" in panel.plot.titleLabel.text


def test_overlays_hide_show_and_fade(qtbot, window):
    select_clip(qtbot, window, anomalous_test_clip(window))
    panel = window.view.panels[0]
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert not panel.map_image.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert panel.map_image.isVisible()
    window.controls.sliders["map"].setValue(30)
    assert abs(panel.map_image.opacity() - 0.3) < 1e-6
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert all(not item.isVisible() for item in panel.truth)
    window.controls.sliders["truth"].setValue(80)
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert all(item.isVisible() and abs(item.brush.color().alphaF() - 0.8) < 0.01 for item in panel.truth)
    # Side by side: a second column with another detector on the same clip, sharing the time axis.
    qtbot.keyClick(window, Qt.Key.Key_V)
    second = window.view.panels[1]
    assert second.plot.scene() is not None and second.detector != panel.detector
    window.view.zoom(4)
    assert np.allclose(second.plot.viewRange()[0], panel.plot.viewRange()[0])


def test_dropped_files_go_to_the_inbox_and_their_scores_appear(qtbot, window, tmp_path):
    window.drop_group.setCurrentText("fan/section_00")
    files = [
        write_tone(tmp_path / "pump_a.wav", 2.0, seed=1),
        write_tone(tmp_path / "pump_b.wav", 2.0, seed=2, burst=True),
    ]
    with qtbot.waitSignal(window.drop_scored, timeout=30000) as blocker:
        drop(window, files)
    result = blocker.args[0]
    assert len(result.clip_ids) == 2 and not result.skipped
    assert set(result.scored[result.clip_ids[1]]) == {"dcase_ae", "ensemble", "knn", "patch_memory"}
    model = window.table.model
    row = model.rows[model.row_of(result.clip_ids[1])]
    assert row.source == "inbox" and row.scores["knn"].score == result.scored[result.clip_ids[1]]["knn"]
    # The last dropped file is shown with every detector's map, and the inbox node counts both.
    qtbot.waitUntil(lambda: window.view.display is not None and window.view.display.clip_id == result.clip_ids[1])
    shown = window.view.display.lanes
    assert {d for d, lanes in shown.items() if lanes.anomaly_map is not None} == set(result.scored[result.clip_ids[1]])
    inbox = window.tree.topLevelItem(window.tree.topLevelItemCount() - 1)
    assert inbox.text(1) == "2"
    # The noisy burst scores higher than the steady file with the fitted fan models.
    assert result.scored[result.clip_ids[1]]["knn"] > result.scored[result.clip_ids[0]]["knn"]
    # The group is remembered for this project, also by the next window.
    from app.settings import AppSettings

    window.settings.sync()
    assert AppSettings().drop_group(str(window.project.folder)) == "fan/section_00"


def test_a_corrupt_dropped_file_is_reported_and_the_others_are_scored(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    good = write_tone(tmp_path / "fine.wav", 2.0)
    before = window.project.count_clips()
    with qtbot.waitSignal(window.drop_scored, timeout=30000) as blocker:
        drop(window, [bad, good])
    result = blocker.args[0]
    assert len(result.clip_ids) == 1 and len(result.skipped) == 1 and "broken.wav" in result.skipped[0]
    assert window.project.count_clips() == before + 1
    box = window.findChild(QMessageBox, "skipped_files")
    assert box is not None and box.isVisible() and "broken.wav" in box.informativeText()
    assert any("broken.wav" in line for line in window.log_panel.lines)


def test_a_fit_can_be_cancelled_and_leaves_the_project_consistent(qtbot, window):
    from app import jobs

    project = window.project
    models_before = {m.model_id for m in results.models(project)}
    scores_before = project.db.execute("SELECT count(*) FROM scores").fetchone()[0]
    job = window.submit("fit", "fit dcase_ae", jobs.fit_detectors(["dcase_ae"], settings={"epochs": 500}))
    with qtbot.waitSignal(
        window.engine.worker.job_progress,
        timeout=20000,
        check_params_cb=lambda job_id, done, total, message: job_id == job.id and done > 0,
    ):
        pass
    with qtbot.waitSignal(window.job_ended, timeout=20000) as ended:
        qtbot.keyClick(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)  # Train > Cancel job
    assert ended.args == [job.id, "cancelled"] and job.status == "cancelled"
    assert window.jobs_panel.rows[job.id].status.text() == "cancelled"
    # Nothing half-made: every model row has its weights, scores are as they were, and the job says how it ended.
    for record in results.models(project):
        assert (project.folder / record.artifact / "model.safetensors").is_file()
    assert {m.model_id for m in results.models(project)} == models_before  # cancelled in its first group
    assert project.db.execute("SELECT count(*) FROM scores").fetchone()[0] == scores_before
    assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert project.db.execute("PRAGMA foreign_key_check").fetchall() == []
    logged = job_log.jobs(project)
    assert logged[-1]["kind"] == "fit" and logged[-1]["status"] == "cancelled"
    # A second connection (another process) sees the same consistent project.
    with sqlite3.connect(project.db_path) as other:
        assert other.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0


def test_the_cancel_buttons_of_the_jobs_dock_stop_a_running_job_and_drop_a_waiting_one(qtbot, window):
    from app import jobs

    running = window.submit("fit", "fit dcase_ae", jobs.fit_detectors(["dcase_ae"], settings={"epochs": 500}))
    waiting = window.submit("score", "score all test clips", jobs.score_all(["knn"]))
    with qtbot.waitSignal(
        window.engine.worker.job_progress,
        timeout=20000,
        check_params_cb=lambda job_id, done, total, message: job_id == running.id,
    ):
        pass
    with qtbot.waitSignal(window.job_ended, timeout=5000) as ended:
        window.jobs_panel.rows[waiting.id].cancel.click()
    assert ended.args == [waiting.id, "cancelled"]
    assert window.jobs_panel.rows[running.id].status.text() == "running"
    with qtbot.waitSignal(window.job_ended, timeout=20000) as ended:
        window.jobs_panel.rows[running.id].cancel.click()
    assert ended.args == [running.id, "cancelled"]
    assert not window.engine.worker.busy()
    assert [row["status"] for row in job_log.jobs(window.project)][-1] == "cancelled"


def test_a_dropped_file_that_is_already_a_data_set_clip_is_shown_and_not_scored_by_another_group(qtbot, window):
    clip = window.project.clips(machine_type="valve", split="test")[0]
    window.drop_group.setCurrentText("fan/section_00")
    before = results.clip_scores(window.project, clip.clip_id)[clip.clip_id]
    with qtbot.waitSignal(window.drop_scored, timeout=30000) as blocker:
        drop(window, [Path(clip.path)])
    result = blocker.args[0]
    assert result.clip_ids == [clip.clip_id] and not result.scored and "already in the project" in result.note
    assert results.clip_scores(window.project, clip.clip_id)[clip.clip_id] == before
    assert window.view.display.clip_id == clip.clip_id


def test_a_refresh_keeps_the_users_filters(qtbot, window):
    fan_clip = window.project.clips(machine_type="fan")[0].clip_id
    select_clip(qtbot, window, fan_clip)
    window.tree.choose({"machine_type": "valve"})
    rows, clip_on_screen = window.table.proxy.rowCount(), window.view.display.clip_id
    window.refresh()  # as after every job
    assert window.tree.current_where() == {"machine_type": "valve"}
    assert window.table.proxy.rowCount() == rows < window.table.model.rowCount()
    assert window.view.display.clip_id == clip_on_screen


def test_a_failing_job_opens_a_dialog_and_goes_to_the_log(qtbot, window, tmp_path):
    from app import jobs

    with qtbot.waitSignal(window.job_ended, timeout=10000) as ended:
        window.submit("import", "import nothing", jobs.import_data(str(tmp_path / "missing")))
    assert ended.args[1] == "failed"
    box = window.findChild(QMessageBox, "job_error")
    assert box is not None and "does not exist" in box.informativeText()
    assert any("import nothing failed" in line for line in window.log_panel.lines)


def test_keyboard_shortcuts_play_zoom_pan_and_move_between_clips(qtbot, window):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    view = window.view
    # Space plays (no audio device here: the playhead still moves) and pauses.
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.playback.playing and not window.playback.has_audio_output
    qtbot.waitUntil(lambda: view.playhead_s > 0.2, timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.playback.playing
    paused_at = view.playhead_s
    qtbot.wait(150)
    assert view.playhead_s == paused_at
    # Zoom in, pan, show the whole clip.
    start, end = view.visible_range()
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    zoomed = view.visible_range()
    assert abs((zoomed[1] - zoomed[0]) - (end - start) / 2) < 1e-6
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert view.visible_range()[0] > zoomed[0]
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert np.allclose(view.visible_range(), (0, window.project.clip(clip_id).duration_s))
    # A selection plays to its end, pauses and resumes to that same end, and loops.
    window.playback.play(0.2, 0.6)
    qtbot.waitUntil(lambda: not window.playback.playing, timeout=3000)
    assert abs(view.playhead_s - 0.6) < 0.05 or abs(view.playhead_s - 0.2) < 0.05
    window.playback.play(0.2, 1.0)
    qtbot.wait(150)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.playback.range == (0.2, 1.0)
    qtbot.keyClick(window, Qt.Key.Key_L)
    qtbot.wait(1200)
    assert window.playback.playing and 0.2 <= view.playhead_s <= 1.0  # looped instead of stopping
    qtbot.keyClick(window, Qt.Key.Key_S)
    assert not window.playback.playing
    # Down shows the next clip of the table.
    row = window.table.view.currentIndex().row()
    qtbot.keyClick(window, Qt.Key.Key_Down)
    assert window.table.view.currentIndex().row() == row + 1
    # D moves to the next detector; F1 lists the shortcuts.
    before = window.controls.first.currentText()
    qtbot.keyClick(window, Qt.Key.Key_D)
    assert window.controls.first.currentText() != before
    qtbot.keyClick(window, Qt.Key.Key_F1)
    from app.dialogs.help import ShortcutsDialog

    dialog = window.findChild(ShortcutsDialog)
    texts = {dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())}
    assert {"Play / pause", "Zoom in", "Cancel job", "Anomaly map"} <= texts
