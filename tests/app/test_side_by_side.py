"""An analyst compares detectors on one clip: side by side (V) shows one column per chosen detector, each with
its own map, colour bar and lane, linked in time and frequency, on the normalised scale so the detectors
compare; a click seeks and a drag draws a region in any of them; D never shows a detector twice; the choice
stays for the next clip and the next start; the colour bar marks the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.settings import AppSettings
from app.views.overlays import map_levels, short_number
from engine.store import results
from tests.app.test_labelling import drag
from tests.app.test_main_window import anomalous_test_clip, select_clip

DETECTORS = ["patch_memory", "dcase_ae", "knn"]
FITTED = ["dcase_ae", "ensemble", "knn", "patch_memory"]


def titles(window) -> list[str]:
    return [panel.plot.titleLabel.text for panel in window.view.shown_panels()]


def shown(window) -> list[str]:
    return [panel.detector for panel in window.view.shown_panels()]


@pytest.fixture
def three(qtbot, window):
    """The most anomalous test clip shown, side by side turned on with the V key."""
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    qtbot.keyClick(window, Qt.Key.Key_V)
    return window


def test_side_by_side_shows_three_detectors_each_in_its_own_column(three):
    window = three
    # The columns start with three different detectors, the demo's favourite first.
    assert window.controls.choice() == DETECTORS
    panels = window.view.shown_panels()
    assert len(panels) == 3 and all(panel.plot.scene() is not None for panel in panels)
    for panel, detector, title in zip(panels, DETECTORS, titles(window), strict=True):
        assert panel.detector == detector and detector in title
        assert panel.lane.isVisible() and panel.curve.getData()[0].size > 0  # its own frame lane
    assert panels[0].map_image.isVisible() and panels[0].colour_bar.isVisible()
    # Linked in time and frequency with the first column.
    window.view.zoom(4)
    window.view.panels[0].plot.setYRange(500, 1500, padding=0)
    for panel in panels[1:]:
        assert np.allclose(panel.plot.viewRange()[0], panels[0].plot.viewRange()[0])
        assert np.allclose(panel.plot.viewRange()[1], panels[0].plot.viewRange()[1])


def test_every_fitted_detector_can_stand_side_by_side(three):
    window = three
    window.controls.compare["ensemble"].setChecked(True)
    assert shown(window) == ["patch_memory", "dcase_ae", "ensemble", "knn"]
    panels = window.view.shown_panels()
    assert len(panels) == 4 and all(p.plot.scene() is not None and p.curve.getData()[0].size > 0 for p in panels)
    # Four columns: the detector alone on a title's first line (narrower columns), and room for its third line.
    assert all(t.startswith(f"<b>{p.detector}</b><br>") for p, t in zip(panels, titles(window), strict=True))
    assert all(p.plot.titleLabel.maximumHeight() > 30 for p in panels)
    # The fourth column is made as the others are: linked, with the spectrogram and the playhead.
    window.view.set_playhead(0.7)
    assert panels[3].images[0].image is not None and panels[3].playheads[0].value() == pytest.approx(0.7)
    window.view.zoom(2)
    assert np.allclose(panels[3].plot.viewRange()[0], panels[0].plot.viewRange()[0])
    # Unticking them leaves the first alone; its columns give their room back.
    for name in ("dcase_ae", "ensemble", "knn"):
        window.controls.compare[name].setChecked(False)
    assert shown(window) == ["patch_memory"] and panels[1].plot.scene() is None


def test_side_by_side_shows_normalised_scores_on_one_lane_axis(three):
    window = three
    display = window.view.display
    stored = results.clip_scores(window.project, display.clip_id)[display.clip_id]
    for panel, title in zip(window.view.shown_panels(), titles(window), strict=True):
        assert panel.normalised
        # The title's score is the stored normalised one (issue 9), not the raw score.
        z = stored[panel.detector].normalised
        assert panel.lanes.score == pytest.approx(z) and f"z {short_number(z, 3)}" in title
        assert f"score {short_number(stored[panel.detector].score, 3)}" not in title
        raw = display.lanes[panel.detector]
        # The lane is the raw lane against the model's held-out frame scores: the same shape, another scale.
        x, y = panel.curve.getData()
        assert np.allclose(x, raw.frame_times)
        assert np.corrcoef(y, raw.frame_scores)[0, 1] == pytest.approx(1.0, abs=1e-4)
    ranges = [tuple(panel.lane.viewRange()[1]) for panel in window.view.shown_panels()]
    assert all(r == pytest.approx(ranges[0]) for r in ranges)  # one score axis: the lanes compare
    # The proposal levels are ratios of the raw frame threshold: not drawn on a normalised lane.
    window.proposal_panel.detector.setCurrentText("patch_memory")
    window.show_proposal_levels()
    assert not window.view.panels[0].levels["on"].isVisible()
    # One column alone shows the raw scores, and the levels, as before.
    window.controls.side_by_side.setChecked(False)
    panel = window.view.panels[0]
    assert not panel.normalised and panel.lanes is display.lanes["patch_memory"]
    assert panel.levels["on"].isVisible()


def test_d_never_shows_the_same_detector_twice(qtbot, three):
    window = three
    window.table.view.setFocus()
    seen = []
    for _ in range(6):
        qtbot.keyClick(window, Qt.Key.Key_D)
        seen.append(window.controls.first.currentText())
        assert len(set(shown(window))) == len(shown(window)) == 3
        assert sorted(shown(window)) == sorted(set(shown(window)))
    assert set(seen) == set(FITTED)  # D goes through every fitted detector
    # A detector that stood beside the first changes places with it.
    window.controls.choose(["knn", "dcase_ae"])
    window.controls.first.setCurrentText("dcase_ae")
    assert shown(window) == ["dcase_ae", "knn"]


def test_turning_side_by_side_off_leaves_the_first_column(qtbot, three):
    window = three
    window.controls.compare["knn"].setChecked(False)
    assert shown(window) == ["patch_memory", "dcase_ae"]
    assert window.view.panels[2].plot.scene() is None  # a column not shown takes no room
    qtbot.keyClick(window, Qt.Key.Key_V)
    assert window.view.shown_panels() == [window.view.panels[0]]
    assert len(titles(window)) == 1 and "patch_memory" in titles(window)[0]
    assert not window.controls.others.isEnabled()


def test_a_click_in_the_third_column_seeks_and_a_drag_there_draws_a_region(qtbot, three):
    window = three
    view, panel = window.view, window.view.panels[2]
    mel = float(np.mean(view.mel_range()))
    point = view.graphics.mapFromScene(panel.view_box.mapViewToScene(QPointF(1.2, mel)))
    with qtbot.waitSignal(view.seek_requested, timeout=3000) as sought:
        qtbot.mouseClick(view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert sought.args[0] == pytest.approx(1.2, abs=0.05)
    window.toggle_label_mode()
    with qtbot.waitSignal(view.region_drawn, timeout=3000) as drawn:
        drag(qtbot, window, (0.3, mel), (0.8, mel), column=2)
    assert drawn.args[0] == pytest.approx(0.3, abs=0.05) and drawn.args[1] == pytest.approx(0.8, abs=0.05)
    # The playhead is drawn in every column.
    view.set_playhead(0.9)
    assert all(line.value() == pytest.approx(0.9) for p in view.shown_panels() for line in p.playheads)


def test_the_choice_stays_for_the_next_clip_and_the_next_start(qtbot, three):
    window = three
    window.controls.choose(["knn", "dcase_ae"])
    others = [c.clip_id for c in window.project.clips(split="test", label="normal")]
    select_clip(qtbot, window, others[0])
    assert shown(window) == ["knn", "dcase_ae"]
    window.settings.sync()
    assert AppSettings().view_detectors() == (["knn", "dcase_ae"], True)


def test_the_colour_bar_marks_the_threshold_on_the_maps_scale(three):
    panel = three.view.panels[0]
    lanes = panel.lanes
    low, high = map_levels(lanes)
    assert panel.colour_bar.levels() == pytest.approx((low, high))
    assert low <= lanes.frame_threshold <= high
    assert panel.threshold_mark.isVisible()
    assert panel.threshold_mark.value() == pytest.approx(256 * (lanes.frame_threshold - low) / (high - low))
    ticks = panel.colour_bar.axis._tickLevels[0]
    assert (pytest.approx(lanes.frame_threshold), "thr") in ticks


def test_a_column_whose_detector_has_no_map_says_so_and_keeps_its_lane(three):
    window = three
    window.view.display.normalised["knn"].anomaly_map = None  # as a classifier's lane without a map
    window.controls.compare["knn"].setChecked(False)
    window.controls.compare["knn"].setChecked(True)
    panel = window.view.panels[2]
    assert "no map" in panel.plot.titleLabel.text
    assert not panel.map_image.isVisible() and not panel.colour_bar.isVisible()
    assert panel.lane.isVisible() and panel.curve.getData()[0].size > 0


def test_the_next_start_comes_back_to_the_saved_choice_where_those_detectors_are_fitted(qtbot):
    from app.views.overlay_controls import OverlayControls
    from app.views.overlays import DEFAULT_OPACITY

    controls = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(controls)
    controls.restore(["knn", "dcase_ae", "none"], True)  # "none": how an older version said two columns
    controls.set_detectors(["dcase_ae", "knn", "patch_memory"], "patch_memory")
    assert controls.choice() == ["knn", "dcase_ae"] and controls.side_by_side.isChecked()
    # A project where the saved detectors are not fitted gets its own defaults: different detectors.
    fresh = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(fresh)
    fresh.restore(["ensemble", "ast_ae", "beats_knn"], False)
    fresh.set_detectors(["dcase_ae", "knn", "patch_memory"], "patch_memory")
    assert fresh.choice() == ["patch_memory", "dcase_ae", "knn"]


def test_one_fitted_detector_is_never_shown_twice_side_by_side(qtbot):
    from app.views.overlay_controls import OverlayControls
    from app.views.overlays import DEFAULT_OPACITY

    controls = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(controls)
    controls.set_detectors(["knn", "dcase_ae"])
    controls.side_by_side.setChecked(True)
    assert controls.choice() == ["knn", "dcase_ae"]
    controls.choose(["dcase_ae", "dcase_ae", "knn"])
    assert controls.choice() == ["dcase_ae", "knn"]
    controls.set_detectors(["knn"])  # a project with only knn fitted: nothing to stand beside it
    assert controls.choice() == ["knn"] and not controls.others.isEnabled()


def test_a_narrow_title_keeps_large_scores_to_a_few_characters():
    assert [short_number(v, 3) for v in (2.353e6, 14790.0, 5870.0, 26.86)] == ["2.35M", "14.8k", "5.87k", "26.9"]
