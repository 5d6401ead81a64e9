"""An analyst compares detectors on one clip: side by side (V) shows up to three columns, each with its own
detector's map, colour bar and lane, linked in time and frequency; a click seeks and a drag draws a region in
any of them; the choice stays for the next clip and the next start; the colour bar marks the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.settings import AppSettings
from app.views.overlays import map_levels
from tests.app.test_labelling import drag
from tests.app.test_main_window import anomalous_test_clip, select_clip

DETECTORS = ("patch_memory", "dcase_ae", "knn")


def titles(window) -> list[str]:
    return [panel.plot.titleLabel.text for panel in window.view.shown_panels()]


@pytest.fixture
def three(qtbot, window):
    """The most anomalous test clip shown, side by side turned on with the V key."""
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    qtbot.keyClick(window, Qt.Key.Key_V)
    return window


def test_side_by_side_shows_three_detectors_each_in_its_own_column(three):
    window = three
    # Fitted with three detectors, the columns start with three different ones, the demo's favourite first.
    assert window.controls.choice() == DETECTORS
    panels = window.view.shown_panels()
    assert panels == window.view.panels and all(panel.plot.scene() is not None for panel in panels)
    for panel, detector, title in zip(panels, DETECTORS, titles(window), strict=True):
        assert panel.lanes.detector == detector and detector in title
        assert panel.lane.isVisible() and panel.curve.getData()[0].size > 0  # its own frame lane
    assert panels[0].map_image.isVisible() and panels[0].colour_bar.isVisible()
    # Linked in time and frequency with the first column.
    window.view.zoom(4)
    window.view.panels[0].plot.setYRange(500, 1500, padding=0)
    for panel in panels[1:]:
        assert np.allclose(panel.plot.viewRange()[0], panels[0].plot.viewRange()[0])
        assert np.allclose(panel.plot.viewRange()[1], panels[0].plot.viewRange()[1])


def test_turning_side_by_side_off_leaves_the_first_column_and_none_drops_the_third(qtbot, three):
    window = three
    window.controls.third.setCurrentText("none")
    assert [p.lanes.detector for p in window.view.shown_panels()] == ["patch_memory", "dcase_ae"]
    assert window.view.panels[2].plot.scene() is None  # a column not shown takes no room
    qtbot.keyClick(window, Qt.Key.Key_V)
    assert window.view.shown_panels() == [window.view.panels[0]]
    assert len(titles(window)) == 1 and "patch_memory" in titles(window)[0]
    assert not window.controls.second.isEnabled() and not window.controls.third.isEnabled()


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
    window.controls.first.setCurrentText("knn")
    window.controls.third.setCurrentText("none")
    others = [c.clip_id for c in window.project.clips(split="test", label="normal")]
    select_clip(qtbot, window, others[0])
    assert [p.lanes.detector for p in window.view.shown_panels()] == ["knn", "dcase_ae"]
    window.settings.sync()
    assert AppSettings().view_detectors() == (["knn", "dcase_ae", "none"], True)


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
    window.view.display.lanes["knn"].anomaly_map = None  # as a classifier's lane without a map
    window.controls.third.setCurrentText("none")
    window.controls.third.setCurrentText("knn")
    panel = window.view.panels[2]
    assert "no map" in panel.plot.titleLabel.text
    assert not panel.map_image.isVisible() and not panel.colour_bar.isVisible()
    assert panel.lane.isVisible() and panel.curve.getData()[0].size > 0


def test_the_next_start_comes_back_to_the_saved_choice_where_those_detectors_are_fitted(qtbot):
    from app.views.overlay_controls import OverlayControls
    from app.views.overlays import DEFAULT_OPACITY

    controls = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(controls)
    controls.restore(["knn", "dcase_ae", "none"], True)
    controls.set_detectors(["dcase_ae", "knn", "patch_memory"], "patch_memory")
    assert controls.choice() == ("knn", "dcase_ae", "") and controls.side_by_side.isChecked()
    # A project where the saved detectors are not fitted gets its own defaults: different detectors.
    fresh = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(fresh)
    fresh.restore(["ensemble", "ast_ae", "beats_knn"], False)
    fresh.set_detectors(["dcase_ae", "knn", "patch_memory"], "patch_memory")
    assert fresh.choice() == ("patch_memory", "dcase_ae", "knn")


def test_one_fitted_detector_is_never_shown_twice_side_by_side(qtbot):
    from app.views.overlay_controls import OverlayControls
    from app.views.overlays import DEFAULT_OPACITY

    controls = OverlayControls(DEFAULT_OPACITY)
    qtbot.addWidget(controls)
    controls.set_detectors(["knn", "dcase_ae"])
    controls.side_by_side.setChecked(True)
    assert controls.choice()[:2] == ("knn", "dcase_ae")
    controls.set_detectors(["knn"])  # a project with only knn fitted: the second column has nothing to show
    assert controls.choice() == ("knn", "", "")


def test_a_narrow_title_keeps_large_scores_to_a_few_characters():
    from app.views.overlays import short_number

    assert [short_number(v, 3) for v in (2.353e6, 14790.0, 5870.0, 26.86)] == ["2.35M", "14.8k", "5.87k", "26.9"]
