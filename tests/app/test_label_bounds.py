"""The label editor holds regions to the clip as a label import does: a region drawn or dragged far past the
clip's end or above its highest frequency is refused with the reason in the status line, one a little past
is clamped to the clip and said so, and nothing absurd reaches the project."""

from __future__ import annotations

import pytest

from app.labelling.editor import LabelEditor
from engine.data.importers import import_files
from engine.store import Project, labels
from tests.app.test_main_window import anomalous_test_clip, select_clip
from tests.helpers import tone, write_wav


def manual(project: Project) -> list[tuple]:
    return [(r.start_s, r.end_s, r.low_hz, r.high_hz) for r in labels.regions(project, kinds=("manual",))]


@pytest.fixture
def editor(qtbot, tmp_path):
    """The editor on a 3 s clip recorded at 16 kHz (highest frequency 8 kHz) of a new project."""
    with Project.create(tmp_path / "project") as project:
        import_files(project, [write_wav(tmp_path / "audio" / "pump.wav", tone(3.0))])
        editor = LabelEditor()
        editor.said = []
        editor.message.connect(editor.said.append)
        editor.set_project(project)
        editor.set_clip("pump", 3.0)
        yield editor


@pytest.mark.parametrize(
    "bounds",
    [
        (0.5, 1e12, None, None),
        (0.5, 1e308, None, None),
        (0.5, 1.0, 100.0, 1e300),
        (0.5, 1.0, 9000.0, 9500.0),
        (0.5, float("inf"), None, None),
        (0.5, 1.0, 100.0, float("nan")),
        (-1e12, 1.0, None, None),
    ],
    ids=["end 1e12 s", "end 1e308 s", "1e300 Hz", "above Nyquist", "end inf", "NaN Hz", "start -1e12 s"],
)
def test_the_editor_refuses_a_region_far_outside_the_clip(editor, bounds):
    assert not editor.create(*bounds)
    assert manual(editor.project) == [] and editor.said[-1].startswith("Not added: the region ")


def test_the_editor_clamps_a_region_a_little_past_the_clip_and_says_so(editor):
    assert editor.create(0.5, 3.3, 100.0, 8040.0)
    assert manual(editor.project) == [(0.5, 3.0, 100.0, 8000.0)]
    assert "ended at 3.3 s" in editor.said[-1] and "reached 8040 Hz" in editor.said[-1]


def test_a_region_dragged_far_past_the_clip_stays_where_it_was(editor):
    assert editor.create(0.5, 1.0, 100.0, 2000.0)
    region_id = labels.regions(editor.project, kinds=("manual",))[0].region_id

    editor.edit_bounds(region_id, 0.5, 1e12, 100.0, 2000.0)
    editor.edit_bounds(region_id, 0.5, 1.0, 100.0, 1e300)

    assert manual(editor.project) == [(0.5, 1.0, 100.0, 2000.0)] and editor.stack.count() == 1
    assert editor.said[-2].startswith("Not changed: the region ends at 1e+12 s")
    assert editor.said[-1].startswith("Not changed: the region reaches 1e+300 Hz")


def test_the_window_refuses_a_drawn_region_far_past_the_clip(qtbot, window):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)

    window.view.region_drawn.emit(0.2, 1e12, None, None)  # what the spectrogram sends after a drag

    assert labels.regions(window.project, clip_id, ("manual",)) == []
    assert window.statusBar().currentMessage().startswith("Not added: the region ends at 1e+12 s")
