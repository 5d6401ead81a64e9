"""Plain recordings organised in the window: select rows, say what they are in Clip properties or the table's
context menu, undo and redo, fit, and see models go stale when their training clips change."""

from __future__ import annotations

import sqlite3

import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt

from app.views.clip_table import FIXED
from engine.data.importers import import_source
from engine.store import Project, results
from tests.helpers import write_hum


@pytest.fixture
def plain_project(tmp_path):
    """Monday's pump recordings (normal) and Tuesday's (hums and knocks), imported with nothing said."""
    root = tmp_path / "recordings"
    for i in range(6):
        write_hum(root / "monday" / f"mon_{i}.wav", seed=i)
    for i in range(3):
        write_hum(root / "tuesday" / f"hum_{i}.wav", seed=100 + i)
        write_hum(root / "tuesday" / f"knock_{i}.wav", seed=200 + i, burst=True)
    with Project.create(tmp_path / "pump") as project:
        import_source(project, root)
    return tmp_path / "pump"


@pytest.fixture
def project_folder(plain_project):
    return plain_project  # the window opens the plain recordings


def stored(folder) -> dict[str, tuple]:
    """What another program reading the project file sees."""
    with sqlite3.connect(folder / "project.sqlite") as db:
        rows = db.execute("SELECT clip_id, machine_type, section_id, domain, split, label FROM clips").fetchall()
    return {row[0]: row[1:] for row in rows}


def select_rows(window, prefix: str) -> list[str]:
    table = window.table
    selection = QItemSelection()
    for row in range(table.proxy.rowCount()):
        index = table.proxy.index(row, 0)
        if table.model.rows[table.proxy.mapToSource(index).row()].clip.clip_id.startswith(prefix):
            selection.select(index, index)
    table.view.selectionModel().select(
        selection, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    return sorted(table.selected_clip_ids())


def fit_all(qtbot, window) -> None:
    with qtbot.waitSignal(window.job_ended, timeout=60000) as ended:
        window.fit_all()
    assert ended.args[1] == "done"


def test_clips_are_organised_undone_redone_and_fitted_from_the_window(qtbot, window, plain_project, monkeypatch):
    panel = window.clip_properties.panel
    monday = select_rows(window, "monday/")
    assert len(monday) == 6 and panel.summary.text() == "6 clip(s) selected"
    panel.boxes["machine"].setEditText("pump")
    panel.boxes["section"].setEditText("0")
    panel.boxes["domain"].setCurrentText("source")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.training_button, Qt.MouseButton.LeftButton)

    assert {stored(plain_project)[c] for c in monday} == {("pump", "00", "source", "train", "normal")}
    assert sorted(window.table.selected_clip_ids()) == monday  # the selection stays for the next step
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert {stored(plain_project)[c] for c in monday} == {("pump", "00", "source", None, None)}
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert {stored(plain_project)[c] for c in monday} == {(None, None, None, None, None)}
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert {stored(plain_project)[c] for c in monday} == {("pump", "00", "source", "train", "normal")}

    tuesday = select_rows(window, "tuesday/")
    assert panel.boxes["split"].currentText() == "(none)"  # what they have in common: nothing said yet
    panel.boxes["machine"].setEditText("pump")
    panel.boxes["section"].setEditText("00")
    panel.boxes["domain"].setCurrentText("source")
    panel.boxes["split"].setCurrentText("test")
    panel.boxes["label"].setCurrentText("normal")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    knocks = select_rows(window, "tuesday/knock")
    menu = window.clip_properties.build_menu()  # the table's context menu on the selected rows
    label_menu = next(a.menu() for a in menu.actions() if a.text() == "Label")
    next(a for a in label_menu.actions() if a.text() == "anomaly").trigger()

    saved = stored(plain_project)
    assert {saved[c] for c in tuesday if c not in knocks} == {("pump", "00", "source", "test", "normal")}
    assert {saved[c] for c in knocks} == {("pump", "00", "source", "test", "anomaly")}
    pump = next(window.tree.topLevelItem(0).child(i) for i in range(window.tree.topLevelItem(0).childCount()))
    assert (pump.text(0), pump.text(1)) == ("pump", "12")

    from engine.detectors import registry

    monkeypatch.setattr(registry, "detector_keys", lambda learning=None: ["knn"])
    fit_all(qtbot, window)
    [model] = results.models(window.project, "knn")
    assert model.metrics["trained_on"] == 6 and not model.stale
    scored = {row.clip_id: row.score for row in results.latest_scores(window.project, "knn", split="test")}
    assert min(scored[c] for c in knocks) > max(scored[c] for c in tuesday if c not in knocks)

    # A training clip moved to the test set: the model no longer fits its clips, and the window says so.
    select_rows(window, "monday/mon_5")
    panel.boxes["split"].setCurrentText("test")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    column = window.table.model.detectors.index("knn") + len(FIXED)
    assert window.table.model.headerData(column, Qt.Orientation.Horizontal) == "knn (stale: refit)"
    section = window.tree.topLevelItem(0).child(0).child(0)
    assert section.text(0) == "section 00 (stale: refit)"
    fit_all(qtbot, window)
    assert not results.latest_models(window.project, "knn")["pump/section_00"].stale
    section = window.tree.topLevelItem(0).child(0).child(0)
    assert section.text(0) == "section 00"
    assert window.table.model.headerData(column, Qt.Orientation.Horizontal) == "knn"


def test_a_bad_machine_name_is_refused_and_nothing_goes_on_the_undo_stack(qtbot, window, plain_project):
    before = stored(plain_project)
    select_rows(window, "monday/")
    panel = window.clip_properties.panel
    panel.boxes["machine"].setEditText("pump/fan")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)

    assert stored(plain_project) == before and window.editor.stack.count() == 0
    assert "may not contain a slash" in window.statusBar().currentMessage()


@pytest.mark.parametrize("in_place", [True, False], ids=["rows-updated", "table-read-again"])
def test_the_tree_filter_and_the_selection_stay_after_a_change(qtbot, window, plain_project, monkeypatch, in_place):
    from app import clip_properties

    monkeypatch.setattr(clip_properties, "IN_PLACE", 300 if in_place else 0)
    assert window.tree.choose({"machine_type": None})  # "(no machine)": every clip, so far
    monday = select_rows(window, "monday/")
    assert window.clip_properties.apply({"label": "normal"})
    assert sorted(window.table.selected_clip_ids()) == monday
    assert window.tree.current_where() == {"machine_type": None}
    assert [window.table.model.rows[window.table.model.row_of(c)].clip.label for c in monday] == ["normal"] * 6

    assert window.clip_properties.apply({"machine": "pump"})  # they leave the "(no machine)" node
    assert window.table.visible_clip_ids() and all(c.startswith("tuesday/") for c in window.table.visible_clip_ids())
    select_rows(window, "tuesday/")
    assert window.clip_properties.apply({"machine": "pump"})  # the node is gone: All clips
    assert window.tree.current_where() == {} and len(window.table.visible_clip_ids()) == 12


def test_a_dropped_clip_given_a_machine_is_handed_on_to_be_scored_again(qtbot, window, plain_project, tmp_path):
    from engine.data.importers import import_files

    import_files(window.project, [write_hum(tmp_path / "drop" / "mystery.wav", seed=7)], source="inbox")
    window.refresh()
    rescored: list[list[str]] = []
    window.rescore_clips = rescored.append  # the drop scoring's entry point, where the window has it
    select_rows(window, "mystery")
    window.clip_properties.apply({"domain": "source"})
    window.clip_properties.apply({"machine": "pump", "section": "00"})

    assert rescored == [["mystery"]]


def test_the_boxes_follow_each_change_so_the_next_apply_sets_only_what_the_user_changed(qtbot, window, plain_project):
    panel = window.clip_properties.panel
    monday = select_rows(window, "monday/")
    qtbot.mouseClick(panel.training_button, Qt.MouseButton.LeftButton)
    assert (panel.boxes["split"].currentText(), panel.boxes["label"].currentText()) == ("train", "normal")

    panel.boxes["machine"].setEditText("pump")
    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    assert {stored(plain_project)[c] for c in monday} == {("pump", None, None, "train", "normal")}
    assert window.editor.stack.undoText() == "set machine=pump on 6 clip(s)"

    qtbot.mouseClick(panel.training_button, Qt.MouseButton.LeftButton)  # they are already: no step to undo
    assert window.editor.stack.count() == 2
