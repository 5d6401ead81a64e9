"""Writes made on the window's own thread (reading a label file, new proposals, a region edit, the label
classes dialog) meet a project damaged under their feet: the user gets the one message saying the file is
damaged and how to repair it, never SQLite's raw text or a traceback, and the window goes on."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QMessageBox

from app.dialogs.label_classes import LabelClassesDialog
from app.labelling.commands import CreateRegion
from engine.store.labels import Region
from tests.app.test_main_window import anomalous_test_clip, select_clip
from tests.damage import damage_page


def damage_shown(window) -> str:
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "database_error"]
    assert len(boxes) == 1 and boxes[0].isVisible()
    return boxes[0].text()


def no_traceback(capfd) -> None:
    err = capfd.readouterr().err
    assert "Traceback" not in err and "malformed" not in err, err


@pytest.fixture
def uncaught(monkeypatch) -> list[BaseException]:
    """Exceptions that escape a Qt slot (PySide6 hands them to sys.excepthook): none may."""
    found: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: found.append(exc))
    return found


def test_reading_a_label_file_into_a_damaged_project_shows_the_damage_message(window, tmp_path, capfd, uncaught):
    clip_id = sorted(window.project.clip_ids())[0]
    label_file = tmp_path / "labels.csv"
    label_file.write_text(f"clip_id,start_s,end_s,label\n{clip_id},0.1,0.5,LEAK\n")
    damage_page(window.project.folder / "project.sqlite", "regions", root=True)
    assert window.read_labels([label_file]) is None
    assert not uncaught
    text = damage_shown(window)
    assert "is damaged" in text and f"earmark repair {window.project.folder}" in text
    assert any("is damaged" in line for line in window.log_panel.lines)
    no_traceback(capfd)


def test_new_proposals_on_a_damaged_project_show_the_damage_message(qtbot, window, uncaught, capfd):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    damage_page(window.project.folder / "project.sqlite", "regions", root=True)
    window.propose_clip()
    assert not uncaught
    assert "earmark repair" in damage_shown(window)
    no_traceback(capfd)


def test_a_region_edit_on_a_damaged_project_says_damaged_not_sqlites_text(qtbot, window):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    said: list[str] = []
    window.editor.message.connect(said.append)
    damage_page(window.project.folder / "project.sqlite", "regions", root=True)
    label = window.project.label_classes()[0].name
    window.editor.stack.push(CreateRegion(window.editor, Region(clip_id, 0.2, 0.6, label)))
    assert said and "is damaged" in said[-1] and "earmark repair" in said[-1]
    assert "this step is dropped" in said[-1]
    assert "database disk image is malformed;" not in said[-1].split("(")[0]  # the raw text only in brackets
    assert window.editor.stack.count() == 0  # the step is dropped


def test_the_label_classes_dialog_on_a_damaged_project_shows_the_damage_message(qtbot, window):
    dialog = LabelClassesDialog(window.project, window)
    qtbot.addWidget(dialog)
    damage_page(window.project.folder / "project.sqlite", "label_classes", root=True)
    assert not dialog.add_class("HISS")
    assert dialog.error.isVisibleTo(dialog)
    assert "is damaged" in dialog.error.text() and "earmark repair" in dialog.error.text()


def test_deleting_a_region_of_a_damaged_project_shows_the_damage_message(qtbot, window, uncaught, capfd):
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    assert window.editor.create(0.2, 0.6)
    window.editor.select(window.editor.last_added.region_id)
    damage_page(window.project.folder / "project.sqlite", "regions", root=True)
    window.editor.delete_selected()
    assert not uncaught
    assert "earmark repair" in damage_shown(window)
    no_traceback(capfd)


def test_setting_clip_fields_on_a_damaged_project_says_damaged_not_sqlites_text(qtbot, window):
    clip_id = anomalous_test_clip(window)
    damage_page(window.project.folder / "project.sqlite", "clips", root=True)
    assert window.clip_properties.apply({"label": "normal"}, [clip_id])
    said = [line for line in window.log_panel.lines if "nothing was changed" in line]
    assert said and "is damaged" in said[-1] and "earmark repair" in said[-1], window.log_panel.lines[-3:]


def test_label_keys_on_a_damaged_project_show_the_damage_message(qtbot, window, uncaught, capfd):
    """A class key (which reads the label classes) and Accept all (which reads the clip's proposals)."""
    clip_id = anomalous_test_clip(window)
    select_clip(qtbot, window, clip_id)
    damage_page(window.project.folder / "project.sqlite", "label_classes", root=True)
    window.editor.choose_class(0)
    assert "earmark repair" in damage_shown(window)
    damage_page(window.project.folder / "project.sqlite", "regions", root=True)
    assert window.editor.accept_all() == 0
    assert not uncaught
    no_traceback(capfd)
