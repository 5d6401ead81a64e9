"""The label classes dialog: every change goes straight to the project through the store, the list follows
it with the same class selected, shortcuts 1-9 follow the order, and a refused change is explained in the
dialog with nothing changed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QInputDialog, QLabel

from app.dialogs.label_classes import NAME, SWATCH, LabelClassesDialog
from engine.audio.io import QA
from engine.data.clip import Clip
from engine.store import Project, labels
from engine.store.labels import Region

DEFAULTS = ["LEAK", "NORMAL", "QUIET", "RANDOM", "MECHANICAL"]


@pytest.fixture
def project(tmp_path):
    clip = Clip(
        clip_id="fan/test/clip_1",
        path="/data/clip_1.wav",
        sample_rate=16000,
        duration_s=10.0,
        machine_type="fan",
        section_id="00",
        domain="source",
        split="test",
        label="anomaly",
        attributes={},
        anomaly_regions=((1.0, 1.5),),
        qa=QA(-20.0, 0.5, 0.0, 0.1),
        checksum="sum1",
        format="WAV/PCM_16",
    )
    with Project.create(tmp_path / "p") as project:
        project.add_clips([clip], source="test")
        labels.add_regions(
            project,
            [
                Region(clip.clip_id, 2.0, 3.0, "LEAK"),
                Region(clip.clip_id, 5.0, 6.0, "LEAK"),
                Region(clip.clip_id, 7.0, 8.0, "QUIET"),
            ],
        )
        yield project


@pytest.fixture
def dialog(qtbot, project):
    dialog = LabelClassesDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _ask(monkeypatch, text: str, ok: bool = True) -> None:
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: (text, ok))


def _names(project: Project) -> list[str]:
    return [c.name for c in project.label_classes()]


def _error(dialog: LabelClassesDialog) -> QLabel:
    return dialog.findChild(QLabel, "class_error")


def test_the_list_shows_each_class_with_its_key_colour_and_manual_region_count(dialog, project):
    assert dialog.objectName() == "label_classes"
    assert dialog.names() == DEFAULTS
    rows = [[dialog.table.item(row, column).text() for column in range(1, 4)] for row in range(5)]
    assert rows[0] == ["1", "LEAK", "2"] and rows[2] == ["3", "QUIET", "1"] and rows[4] == ["5", "MECHANICAL", "0"]
    assert dialog.table.item(0, SWATCH).data(Qt.ItemDataRole.UserRole) == project.label_classes()[0].colour
    assert not _error(dialog).isVisible()


def test_add_puts_a_new_class_last_with_the_next_key_and_a_colour(qtbot, dialog, project, monkeypatch):
    _ask(monkeypatch, "  SQUEAK ")
    with qtbot.waitSignal(dialog.classes_changed):
        dialog.add_button.click()
    added = project.label_classes()[-1]
    assert added.name == "SQUEAK" and added.shortcut == "6" and added.colour.startswith("#")
    assert dialog.names()[-1] == "SQUEAK" and dialog.selected_name() == "SQUEAK"
    assert dialog.table.item(5, 1).text() == "6"

    assert dialog.add_class("HISS", "#00ff00")
    assert labels.label_class(project, "HISS").colour == "#00ff00"

    _ask(monkeypatch, "never mind", ok=False)  # cancelled: nothing asked of the store
    with qtbot.assertNotEmitted(dialog.classes_changed):
        dialog.add_button.click()
    assert _names(project) == [*DEFAULTS, "SQUEAK", "HISS"]


def test_a_duplicate_or_empty_name_is_refused_in_the_dialog_and_nothing_changes(qtbot, dialog, project, monkeypatch):
    _ask(monkeypatch, "leak")
    with qtbot.assertNotEmitted(dialog.classes_changed):
        dialog.add_button.click()
    assert _error(dialog).isVisible() and "already" in _error(dialog).text()
    assert "c62828" in _error(dialog).styleSheet()
    assert not dialog.add_class("   ")
    assert "needs a name" in _error(dialog).text()
    dialog.select("NORMAL")
    assert not dialog.rename_class("NORMAL", "Quiet")
    assert _names(project) == DEFAULTS and dialog.names() == DEFAULTS
    assert dialog.add_class("RATTLE")  # a change that goes through clears the message
    assert not _error(dialog).isVisible()


def test_rename_relabels_the_manual_regions_and_keeps_the_class_selected(qtbot, dialog, project, monkeypatch):
    dialog.select("LEAK")
    _ask(monkeypatch, "HISS")
    with qtbot.waitSignal(dialog.classes_changed):
        dialog.rename_button.click()
    assert _names(project) == ["HISS", *DEFAULTS[1:]]
    assert [r.label for r in labels.regions(project, kinds=("manual",))] == ["HISS", "HISS", "QUIET"]
    assert [r.label for r in labels.regions(project, kinds=("truth",))] == ["anomaly"]
    assert labels.label_counts(project) == {"HISS": 2, "QUIET": 1}
    assert dialog.selected_name() == "HISS" and dialog.table.item(0, 3).text() == "2"

    dialog.select("MECHANICAL")  # a double-click renames too
    _ask(monkeypatch, "GRIND")
    rect = dialog.table.visualItemRect(dialog.table.item(4, NAME))
    qtbot.mouseClick(dialog.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(dialog.classes_changed):
        qtbot.mouseDClick(dialog.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert _names(project)[-1] == "GRIND" and dialog.selected_name() == "GRIND"


def test_recolour_from_the_colour_button(qtbot, dialog, project, monkeypatch):
    dialog.select("QUIET")
    monkeypatch.setattr(QColorDialog, "getColor", lambda *args, **kwargs: QColor("#123456"))
    with qtbot.waitSignal(dialog.classes_changed):
        dialog.colour_button.click()
    assert labels.label_class(project, "QUIET").colour == "#123456"
    assert dialog.table.item(2, SWATCH).data(Qt.ItemDataRole.UserRole) == "#123456"
    assert dialog.selected_name() == "QUIET"

    monkeypatch.setattr(QColorDialog, "getColor", lambda *args, **kwargs: QColor())  # cancelled
    with qtbot.assertNotEmitted(dialog.classes_changed):
        dialog.colour_button.click()
    assert not dialog.recolour_class("QUIET", "not a colour") and _error(dialog).isVisible()
    assert labels.label_class(project, "QUIET").colour == "#123456"


def test_moving_reorders_and_the_keys_follow_the_order(qtbot, dialog, project):
    dialog.select("QUIET")
    with qtbot.waitSignal(dialog.classes_changed):
        dialog.up_button.click()
    classes = project.label_classes()
    assert [c.name for c in classes] == ["LEAK", "QUIET", "NORMAL", "RANDOM", "MECHANICAL"]
    assert [c.shortcut for c in classes] == ["1", "2", "3", "4", "5"]
    assert dialog.selected_name() == "QUIET" and dialog.table.item(1, 1).text() == "2"

    with qtbot.waitSignal(dialog.classes_changed):
        dialog.down_button.click()
    assert _names(project) == DEFAULTS

    with qtbot.waitSignal(dialog.classes_changed):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert _names(project) == ["LEAK", "NORMAL", "RANDOM", "QUIET", "MECHANICAL"]
    assert dialog.move_class("QUIET", -3) and _names(project)[0] == "QUIET"
    assert labels.label_class(project, "QUIET").shortcut == "1"
    assert not dialog.up_button.isEnabled()
    with qtbot.assertNotEmitted(dialog.classes_changed):
        assert not dialog.move_class("QUIET", -1)  # already first
    with qtbot.waitSignal(dialog.classes_changed):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(dialog.classes_changed):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert _names(project)[0] == "QUIET"


def test_remove_takes_an_unused_class_and_refuses_one_in_use(qtbot, dialog, project):
    dialog.select("NORMAL")
    with qtbot.waitSignal(dialog.classes_changed):
        dialog.remove_button.click()
    classes = project.label_classes()
    assert [c.name for c in classes] == ["LEAK", "QUIET", "RANDOM", "MECHANICAL"]
    assert [c.shortcut for c in classes] == ["1", "2", "3", "4"]
    assert dialog.selected_name() == "QUIET"  # the class below takes the selection

    dialog.select("MECHANICAL")
    with qtbot.waitSignal(dialog.classes_changed):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Delete)
    assert _names(project) == ["LEAK", "QUIET", "RANDOM"] and dialog.selected_name() == "RANDOM"

    dialog.select("LEAK")
    with qtbot.assertNotEmitted(dialog.classes_changed):
        dialog.remove_button.click()
    assert _error(dialog).isVisible() and "2 region(s)" in _error(dialog).text()
    assert _names(project) == ["LEAK", "QUIET", "RANDOM"] and dialog.names() == ["LEAK", "QUIET", "RANDOM"]
    assert dialog.selected_name() == "LEAK"
