"""Labelling without traps. A technician adds a region, then presses the key of the class she wants for the
*next* one: the region just added keeps its class. A relabel happens only to a region she selected, and the
status line says what changed. Proposals from an anomaly detector say what the detector found ("anomaly?",
the detector named), never a class she did not choose; accepting one gives it the class she is labelling
with. The label classes' colours are never the ground truth's red."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.views.overlays import TRUTH_COLOUR
from engine.labels.proposals import ANOMALY_FINDING
from engine.store import labels
from engine.store.labels import PALETTE
from tests.app.test_labelling import labelling, manual_rows, press, put_playhead  # noqa: F401 (a fixture)

Key = Qt.Key


def mark(qtbot, window, start: float, end: float) -> None:
    put_playhead(window, start)
    press(qtbot, window, Key.Key_BracketLeft)
    put_playhead(window, end)
    press(qtbot, window, Key.Key_BracketRight)
    press(qtbot, window, Key.Key_Return)


def test_a_class_key_after_adding_a_region_is_for_the_next_region(qtbot, labelling):
    window, clip_id = labelling
    first, second, third = [c.name for c in window.project.label_classes()][:3]
    mark(qtbot, window, 0.1, 0.4)
    assert window.statusBar().currentMessage().startswith(f"Added {first} 0.10-0.40 s")
    press(qtbot, window, Key.Key_2)  # the class of the next region, not a relabel of this one
    assert [label for *_, label in manual_rows(window)] == [first]
    assert window.statusBar().currentMessage() == f"New regions will be labelled {second}"
    mark(qtbot, window, 0.6, 0.9)
    assert [label for *_, label in manual_rows(window)] == [first, second]

    # A region drawn with the mouse is not left selected either.
    window.view.region_drawn.emit(1.2, 1.5, None, None)
    press(qtbot, window, Key.Key_3)
    assert [label for *_, label in manual_rows(window)] == [first, second, second]
    assert window.editor.current_class == third

    # Selected by a click, it is relabelled, and the status line says from what to what.
    drawn = manual_rows(window)[-1][0]
    window.view.region_clicked.emit(drawn)
    press(qtbot, window, Key.Key_1)
    assert [label for *_, label in manual_rows(window)] == [first, second, first]
    assert window.statusBar().currentMessage() == f"Relabelled 1.20-1.50 s from {second} to {first}"
    assert f"Relabelled 1.20-1.50 s from {second} to {first}" in window.log_panel.lines  # and in the log


def test_an_anomaly_detectors_proposals_say_what_it_found_and_take_the_chosen_class(qtbot, labelling):
    window, clip_id = labelling
    classes = [c.name for c in window.project.label_classes()]
    window.proposal_panel.detector.setCurrentText("patch_memory")
    window.proposal_panel.on.set_value(0.5)
    window.proposal_panel.off.set_value(0.4)
    press(qtbot, window, Key.Key_P)
    proposed = labels.regions(window.project, clip_id, ("proposal",))
    assert proposed and {p.label for p in proposed} == {ANOMALY_FINDING}
    assert [c.name for c in window.project.label_classes()] == classes  # a finding is not made a class

    # On the spectrogram: "anomaly? (patch_memory) 80%"; in the region table: "anomaly?".
    qtbot.waitUntil(lambda: proposed[0].region_id in window.view.panels[0].labels.by_id)
    captions = [item.textItem.toPlainText() for item in window.view.panels[0].labels.items if hasattr(item, "textItem")]
    assert f"anomaly? (patch_memory) {proposed[0].confidence:.0%}" in captions
    assert not any(c.startswith(tuple(classes)) for c in captions)
    table = window.region_table.model
    shown = [
        table.data(table.index(row, 4)) for row in range(table.rowCount()) if table.regions[row].kind == "proposal"
    ]
    assert set(shown) == {"anomaly?"}

    press(qtbot, window, Key.Key_2)  # nothing selected: the class to label with
    press(qtbot, window, Key.Key_N)  # the first pending proposal
    chosen = window.editor.selected
    press(qtbot, window, Key.Key_A)
    accepted = labels.region(window.project, chosen)
    assert (accepted.kind, accepted.label) == ("manual", classes[1])
    assert (
        window.statusBar()
        .currentMessage()
        .startswith(f"Accepted {accepted.start_s:.2f}-{accepted.end_s:.2f} s as {classes[1]}")
    )
    if labels.regions(window.project, clip_id, ("proposal",)):
        press(qtbot, window, Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
        assert {r.label for r in labels.regions(window.project, clip_id, ("manual",))} == {classes[1]}
    assert labels.regions(window.project, clip_id, ("proposal",)) == []


def test_a_proposal_of_a_class_keeps_it_when_accepted(qtbot, labelling):
    """The leak classifier's proposals are LEAK: accepting one keeps LEAK whatever class is current."""
    window, clip_id = labelling
    leak = window.project.label_classes()[0].name
    found = labels.add_region(window.project, labels.Region(clip_id, 0.3, 0.6, leak, "proposal", confidence=0.9))
    window.refresh_regions()
    press(qtbot, window, Key.Key_2)
    window.editor.select(found.region_id)
    press(qtbot, window, Key.Key_A)
    assert labels.region(window.project, found.region_id).label == leak


def _distance(a: str, b: str) -> float:
    x, y = QColor(a), QColor(b)
    return ((x.red() - y.red()) ** 2 + (x.green() - y.green()) ** 2 + (x.blue() - y.blue()) ** 2) ** 0.5


def test_class_colours_are_never_the_ground_truths_red(window):
    colours = [c.colour for c in window.project.label_classes()] + list(PALETTE)
    assert min(_distance(c, TRUTH_COLOUR) for c in colours) > 120, colours
