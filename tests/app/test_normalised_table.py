"""An analyst compares detectors whose raw scores live on different scales: View > Normalised scores makes
every score column show the clip's score against that model's training normals, the headers say so, and
the window remembers the choice next time it opens."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt

from app import clip_data
from engine.store import results

DETECTORS = ("dcase_ae", "knn", "patch_memory")


def _column(window, detector: str) -> int:
    model = window.table.model
    return next(
        c
        for c in range(model.columnCount())
        if str(model.headerData(c, Qt.Orientation.Horizontal)).split(" ")[0] == detector
    )


def _cells(window, detector: str) -> dict[str, str]:
    model, column = window.table.model, _column(window, detector)
    return {row.clip.clip_id: model.data(model.index(i, column)) for i, row in enumerate(model.rows)}


def _scored(window, detector: str) -> dict[str, results.ClipScore]:
    return {clip_id: by[detector] for clip_id, by in results.clip_scores(window.project).items() if detector in by}


def test_normalised_scores_replace_the_raw_ones_in_every_score_column_and_back(window):
    action = window.actions_by_name["normalised_scores"]
    assert action.isCheckable() and not action.isChecked()
    raw = {d: _cells(window, d) for d in DETECTORS}
    action.trigger()
    assert action.isChecked()
    for detector in DETECTORS:
        header = window.table.model.headerData(_column(window, detector), Qt.Orientation.Horizontal)
        assert header == f"{detector} (normalised)"
        cells, stored = _cells(window, detector), _scored(window, detector)
        assert stored
        for clip_id, score in stored.items():
            assert score.normalised is not None and math.isfinite(score.normalised)
            assert cells[clip_id] == f"{score.normalised:.4g}" != raw[detector][clip_id]
    # Sorting by a normalised column orders clips by their normalised scores.
    proxy, column = window.table.proxy, _column(window, "knn")
    proxy.sort(column, Qt.SortOrder.DescendingOrder)
    stored = _scored(window, "knn")
    top = window.table.visible_clip_ids()[0]
    assert stored[top].normalised == max(s.normalised for s in stored.values())
    action.trigger()
    assert not action.isChecked()
    assert window.table.model.headerData(_column(window, "knn"), Qt.Orientation.Horizontal) == "knn"
    assert _cells(window, "knn") == raw["knn"]


def test_the_window_remembers_showing_normalised_scores(qtbot, window):
    from app.main_window import MainWindow

    window.actions_by_name["normalised_scores"].trigger()
    window.settings.sync()
    again = MainWindow(use_audio=False)
    qtbot.addWidget(again)
    try:
        assert again.actions_by_name["normalised_scores"].isChecked()
        assert again.table.model.normalised
    finally:
        again.shutdown()


def test_a_score_from_before_normalised_scores_shows_an_empty_cell_that_says_why(window):
    clip_id, score = next(iter(_scored(window, "knn").items()))
    window.project.db.execute(
        "UPDATE scores SET normalised = NULL WHERE model_id = ? AND clip_id = ?", [score.model_id, clip_id]
    )
    window.project.db.conn.commit()
    model = window.table.model
    model.upsert(clip_data.table_rows(window.project, [clip_id]))  # the row as the table reads it from the project
    row = model.row_of(clip_id)
    assert model.rows[row].scores["knn"].normalised is None
    window.toggle_normalised_scores(True)
    index = model.index(row, _column(window, "knn"))
    assert model.data(index) == ""
    assert "score the clip again" in model.data(index, Qt.ItemDataRole.ToolTipRole)
