"""A clip whose stored frame scores were cut short (a kill while they were written, before writes were atomic)
still shows in the window: its spectrogram, its scores and every other detector's lanes, with one line in the
log naming the damaged file and saying to score again."""

from __future__ import annotations

from engine.store import Project, results


def test_the_window_shows_a_clip_with_a_truncated_lanes_file_and_says_so(qtbot, window, project_folder):
    with Project.open(project_folder) as project:
        scores = results.clip_scores(project)
        clip_id, by_detector = next(
            (c, s) for c, s in scores.items() if len(s) >= 2 and all(score.map_artifact for score in s.values())
        )
    damaged_detector, damaged = sorted(by_detector.items())[0]
    lanes_file = project_folder / damaged.map_artifact
    data = lanes_file.read_bytes()
    lanes_file.write_bytes(data[: len(data) // 2])

    window.table.select(clip_id)
    qtbot.waitUntil(lambda: window.view.display is not None and window.view.display.clip_id == clip_id)
    display = window.view.display
    assert set(display.lanes) == set(by_detector)  # every score is shown
    assert len(display.lanes[damaged_detector].frame_scores) == 0  # the cut lanes are left out
    assert all(len(display.lanes[d].frame_scores) > 0 for d in by_detector if d != damaged_detector)
    [line] = [line for line in window.log_panel.lines if lanes_file.name in line]
    assert damaged_detector in line and "damaged" in line and "score the clips again" in line
