"""View > Evaluation on the demo project: the figures are `earmark evaluate`'s, the ROC and histogram draw,
a threshold dragged on the histogram (or set by a false-positive rate) changes that group's stored decisions
and the clip table's at once and Ctrl+Z puts them back, a bar or a ROC point filters the clip table, and a
clip's new label shows in the figures."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.views.evaluation_table import FIXED
from engine import cli
from engine.evaluation import curves
from engine.evaluation.curves import score_sets
from engine.evaluation.report import evaluate_project


@pytest.fixture
def panel(window, qtbot):
    window.actions_by_name["evaluation"].trigger()
    panel = window.evaluation_panel
    with qtbot.waitSignal(panel.shown):  # read on a background thread
        pass
    assert window.docks["evaluation"].isVisible()
    assert panel.model.rowCount() > 0
    return panel


def figure_row(panel, machine: str, field: str) -> int:
    return next(i for i, r in enumerate(panel.model.rows) if r.machine == machine and r.field == field)


def choose(panel, machine: str, field: str, detector: str) -> None:
    row = figure_row(panel, machine, field)
    index = panel.model.index(row, len(FIXED) + panel.model.detectors.index(detector))
    panel.table.setCurrentIndex(index)
    assert panel.detector_box.currentText() == detector


def stored(window, detector: str, machine: str):
    """The group's score set as the project has it now (threshold and scores)."""
    return next(s for s in score_sets(window.project) if (s.detector, s.machine_type) == (detector, machine))


def stored_decisions(window, model_id: int) -> dict[str, bool]:
    rows = window.project.db.execute("SELECT clip_id, decision FROM scores WHERE model_id = ?", [model_id])
    return {clip_id: bool(decision) for clip_id, decision in rows.fetchall()}


def table_decisions(window, detector: str, clip_ids) -> dict[str, str]:
    model = window.table.model
    model.set_decision_detector(detector)
    return {c: model.index(model.row_of(c), model.columnCount() - 1).data() for c in clip_ids}


def test_the_figures_are_those_of_earmark_evaluate_and_the_plots_draw(window, panel, project_folder, capsys):
    assert cli.main(["evaluate", str(project_folder), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(r["detector"] for r in printed) == sorted(panel.model.detectors)
    compared = 0
    for report in printed:
        detector = report["detector"]
        for section in report["sections"]:
            for row, figure in enumerate(panel.model.rows):
                if (figure.machine, figure.section) == (section["machine"], section["section"]):
                    shown = panel.model.value(row, detector)
                    expected = section[figure.field]
                    assert (expected is None and math.isnan(shown)) or shown == pytest.approx(expected, abs=1e-12)
                    compared += 1
        official = panel.model.value(len(panel.model.rows) - 1, detector)
        assert official == pytest.approx(report["official_score"])
    assert compared == 9 * sum(len(r["sections"]) for r in printed)
    # The best of each row is marked, and only there.
    row = figure_row(panel, "fan", "auc_source")
    values = [panel.model.value(row, d) for d in panel.model.detectors]
    best = int(np.nanargmax(values))
    texts = [panel.model.index(row, len(FIXED) + i).data() for i in range(len(values))]
    tied = sum(abs(v - values[best]) < 1e-9 for v in values)  # 0.9 and 0.9000000000000001 are one figure
    assert texts[best].endswith("*") and sum(t.endswith("*") for t in texts) == tied

    choose(panel, "fan", "auc_source", panel.model.detectors[0])
    curves_drawn = [item for item in panel.roc.listDataItems() if item.name() in panel.model.detectors]
    assert len(curves_drawn) == len(panel.model.detectors)  # every detector's ROC, beside the chance line
    assert panel.histogram.listDataItems(), "no histogram bars"
    assert panel.histogram.line.isVisible()


def mouse(plot, kind, x: float, y: float, buttons=Qt.MouseButton.NoButton) -> None:
    """A mouse event at data coordinates (x, y) of a pyqtgraph plot, sent to its viewport as Qt sends it."""
    at = QPointF(plot.mapFromScene(plot.plotItem.vb.mapViewToScene(QPointF(x, y))))
    viewport = plot.viewport()
    event = QMouseEvent(
        kind, at, QPointF(viewport.mapToGlobal(at)), Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(viewport, event)


def click(qtbot, plot, x: float, y: float) -> None:
    mouse(plot, QEvent.Type.MouseMove, x, y)
    qtbot.wait(40)  # pyqtgraph drops mouse events that come faster than a screen redraws
    mouse(plot, QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
    mouse(plot, QEvent.Type.MouseButtonRelease, x, y)


def drag_line(qtbot, histogram, start: float, end: float) -> None:
    """Press the left button on the threshold line at score `start`, move to `end` in steps, let go."""
    middle = float(np.mean(histogram.plotItem.vb.viewRange()[1]))
    left = Qt.MouseButton.LeftButton
    mouse(histogram, QEvent.Type.MouseMove, start, middle)  # hovering the line first, as a hand does
    mouse(histogram, QEvent.Type.MouseButtonPress, start, middle, left)
    for step in range(1, 6):
        qtbot.wait(40)
        mouse(histogram, QEvent.Type.MouseMove, start + (end - start) * step / 5, middle, left)
    qtbot.wait(40)
    mouse(histogram, QEvent.Type.MouseButtonRelease, end, middle)


def test_dragging_the_threshold_changes_the_groups_decisions_and_undo_restores_them(window, panel, qtbot):
    detector = panel.model.detectors[0]
    choose(panel, "fan", "f1_source", detector)
    before = stored(window, detector, "fan")
    decisions_before = stored_decisions(window, before.model_id)
    other_groups = {
        s.model_id: stored_decisions(window, s.model_id) for s in score_sets(window.project) if s.machine_type != "fan"
    }
    target = float(np.median(before.scores))  # about half the group's clips above it
    row = figure_row(panel, "fan", "f1_source")
    shown_live: list[float] = []
    panel.histogram.threshold_moving.connect(lambda _: shown_live.append(panel.model.value(row, detector)))

    with qtbot.waitSignal(panel.shown):  # the figures read again once it is stored
        drag_line(qtbot, panel.histogram, before.threshold, target)

    after = stored(window, detector, "fan")
    new = after.threshold
    assert new != pytest.approx(before.threshold) and new == pytest.approx(panel.histogram.line.value())
    decisions = stored_decisions(window, before.model_id)
    scores = dict(zip(before.clip_ids, before.scores, strict=True))
    assert all(decisions[c] == (scores[c] > new) for c in scores)
    changed = [c for c in scores if decisions[c] != decisions_before[c]]
    assert changed, "the median should move some decisions"
    shown = table_decisions(window, detector, changed)
    assert all(shown[c] == ("anomaly" if decisions[c] else "normal") for c in changed)
    for model_id, kept in other_groups.items():  # other groups keep theirs
        assert stored_decisions(window, model_id) == kept
    fan = next(s for r in evaluate_project(window.project, [detector]) for s in r.sections if s.machine_type == "fan")
    assert panel.model.value(row, detector) == pytest.approx(fan.f1_source)
    assert shown_live[-1] == pytest.approx(fan.f1_source)  # what the drag showed is what was stored
    assert panel.histogram.line.value() == pytest.approx(new)

    with qtbot.waitSignal(panel.shown):
        window.undo()
    assert stored(window, detector, "fan").threshold == pytest.approx(before.threshold)
    assert stored_decisions(window, before.model_id) == decisions_before
    shown = table_decisions(window, detector, changed)
    assert all(shown[c] == ("anomaly" if decisions_before[c] else "normal") for c in changed)
    assert panel.histogram.line.value() == pytest.approx(before.threshold)


def test_a_false_positive_rate_sets_the_threshold(window, panel, qtbot):
    from engine.store import thresholds

    detector = panel.model.detectors[-1]
    choose(panel, "valve", "auc_target", detector)
    model_id = stored(window, detector, "valve").model_id
    panel.fpr_box.setValue(20.0)
    with qtbot.waitSignal(panel.shown):
        panel.set_fpr.click()
    expected = thresholds.threshold_for_fpr(window.project, model_id, 0.2)
    assert stored(window, detector, "valve").threshold == pytest.approx(expected)
    assert panel.threshold_box.value() == pytest.approx(expected, abs=1e-4)
    from engine.store import results

    record = results.model(window.project, model_id)
    assert record.threshold_set_by == "fpr" and record.threshold_fpr == pytest.approx(0.2)

    with qtbot.waitSignal(panel.shown):
        panel.reset.click()  # back to the fitted threshold, and Ctrl+Z to the chosen one again
    assert stored(window, detector, "valve").threshold == pytest.approx(record.threshold)
    assert panel.histogram.line.value() == pytest.approx(record.threshold)
    with qtbot.waitSignal(panel.shown):
        window.undo()
    assert stored(window, detector, "valve").threshold == pytest.approx(expected)
    assert results.model(window.project, model_id).threshold_set_by == "fpr"  # and how it was chosen


def test_a_histogram_bar_and_a_roc_point_filter_the_clip_table(window, panel, qtbot):
    detector = panel.model.detectors[0]
    choose(panel, "fan", "auc_source", detector)
    histogram = panel.histogram.histogram
    counts = sum(np.asarray(c) for c in histogram.counts_by_kind.values())
    middles = (histogram.edges[:-1] + histogram.edges[1:]) / 2
    width = histogram.edges[1] - histogram.edges[0]
    away = np.abs(middles - panel.histogram.line.value()) > width  # a click on the line would grab the line
    bar = int(np.argmax(np.where(away, counts, -1)))
    click(qtbot, panel.histogram, float(middles[bar]), 0.5)
    assert sorted(window.table.visible_clip_ids()) == sorted(histogram.clip_ids_by_bin[bar])
    assert window.table.only_line.isVisible() and "histogram bar" in window.table.only_line.text()

    window.table.show_only(None)
    assert len(window.table.visible_clip_ids()) == window.table.model.rowCount()
    # A point of one detector's curve that no other curve passes through, clicked.
    points = {d: np.column_stack(curves.roc_points(panel.roc.sets[d], "source")[:2]) for d in panel.roc.sets}
    chosen, index = next(
        (d, i)
        for d, own in points.items()
        for i in range(1, len(own))
        if not any(np.any(np.all(np.isclose(p, own[i]), axis=1)) for e, p in points.items() if e != d)
        and not np.any(np.all(np.isclose(np.delete(own, i, axis=0), own[i]), axis=1))
    )
    click(qtbot, panel.roc, *points[chosen][index])
    score_set = panel.roc.sets[chosen]
    cut = panel.roc.thresholds[chosen][index]
    flagged = {
        c
        for c, d, a, s in zip(
            score_set.clip_ids, score_set.domains, score_set.is_anomaly, score_set.scores, strict=True
        )
        if (d == "source" or a) and s >= cut
    }
    assert set(window.table.visible_clip_ids()) == flagged
    assert chosen in window.table.only_line.text()


def test_a_clips_new_label_shows_in_the_figures(window, panel, qtbot):
    detector = panel.model.detectors[0]
    fan = stored(window, detector, "fan")
    normal = next(
        c for c, d, a in zip(fan.clip_ids, fan.domains, fan.is_anomaly, strict=True) if d == "source" and not a
    )
    row = figure_row(panel, "fan", "auc_source")
    before = panel.model.value(row, detector)
    assert window.clip_properties.apply({"label": "anomaly"}, [normal])
    report = evaluate_project(window.project, [detector])[0]
    expected = next(s.auc_source for s in report.sections if s.machine_type == "fan")
    assert expected != pytest.approx(before)
    qtbot.waitUntil(lambda: panel.model.value(row, detector) == pytest.approx(expected), timeout=5000)


def test_a_few_far_scores_do_not_squeeze_the_histogram_into_one_bar():
    from app.views.score_plots import pool_outliers
    from engine.evaluation.curves import ScoreSet, histogram

    scores = np.concatenate([np.linspace(0.0, 1.0, 37), [40.0, 90.0, 400.0]])
    n = len(scores)
    score_set = ScoreSet(
        "knn", "fan", "00", 1, [f"c{i}" for i in range(n)], ["source"] * n, scores > 1.0, scores, scores, 0.8
    )
    shown, pooled = pool_outliers(score_set)
    assert pooled == 3
    bars = histogram(shown)
    assert sorted(bars.clip_ids_by_bin[-1])[-3:] == ["c37", "c38", "c39"]  # the far clips: in the last bar
    assert max(len(ids) for ids in bars.clip_ids_by_bin) < 10  # the rest spread over the bars
    unchanged, none = pool_outliers(
        dataclasses.replace(
            score_set,
            scores=scores[:37],
            clip_ids=score_set.clip_ids[:37],
            domains=["source"] * 37,
            is_anomaly=scores[:37] > 1,
            normalised=scores[:37],
        )
    )
    assert none == 0 and np.array_equal(unchanged.scores, scores[:37])


def test_opening_another_project_shows_none_of_the_last_ones_figures(window, panel, tmp_path):
    """The new project's figures are read in the background (seconds on a large one): until they come, the
    dock must not offer the last project's rows, whose models' ids a dragged threshold would write into the
    new project."""
    from engine.store import Project

    Project.create(tmp_path / "other").close()
    assert panel.sets and panel.model.rowCount()
    assert window.open_project(tmp_path / "other")
    assert panel.sets == {} and panel.model.rowCount() == 0
    assert panel.current_set() is None and not panel.reset.isEnabled()


def test_the_clip_on_show_follows_a_threshold_change_and_its_undo(window, panel, qtbot, monkeypatch):
    """The spectrogram's lane draws the group's threshold and says the clip's decision: set in the dock (or
    undone), the clip on show must show the new one, and its row stay current in the table, also when so many
    decisions change that the table is read again whole."""
    from app import window_evaluation

    monkeypatch.setattr(window_evaluation, "IN_PLACE", 0)  # the whole-table path of a large group
    detector = panel.model.detectors[0]
    before = stored(window, detector, "fan")
    clip_id = before.clip_ids[0]
    assert window.table.select(clip_id)
    window.show_clip(clip_id)
    assert window.view.display.lanes[detector].threshold == pytest.approx(before.threshold)
    target = float(np.median(before.scores))
    with qtbot.waitSignal(panel.shown):
        assert window.set_group_threshold(detector, before.model_id, target)
    lanes = window.view.display.lanes[detector]
    assert lanes.threshold == pytest.approx(target) and lanes.decision == (lanes.score > target)
    assert window.table.selected_clip_ids() == [clip_id]
    with qtbot.waitSignal(panel.shown):
        window.undo()
    assert window.view.display.lanes[detector].threshold == pytest.approx(before.threshold)
    assert window.table.selected_clip_ids() == [clip_id]


def test_closing_the_window_ends_the_evaluation_reader_before_the_project_closes(window, panel, monkeypatch):
    """A read that runs when the window closes is waited for, and one still waiting never starts: no read may
    reach the project after the window closed it (it would open a new connection to it)."""
    import threading

    started, release = threading.Event(), threading.Event()
    reads = []

    def slow_read(request, project):
        reads.append(request)
        started.set()
        release.wait(5)

    reader = window._evaluation_reader
    monkeypatch.setattr(reader, "_read", slow_read)
    reader.read(window.project)
    assert started.wait(5)
    reader.read(window.project)  # waits behind the running one
    threading.Timer(0.3, release.set).start()
    window.shutdown()
    assert len(reads) == 1 and release.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("earmark-evaluation")]
