"""A read-only project in the window: it opens for browsing and listening, every editing action is disabled,
the reason is shown, and a dropped file is refused with the reason instead of failing half-way."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.damage import read_only_mount


@pytest.fixture(autouse=True)
def _warnings_told(monkeypatch) -> list[str]:
    """A warning box would wait for a click: what it says is kept instead."""
    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: told.append(text))
    return told


@pytest.fixture
def project_folder(demo_copy, tmp_path):
    with read_only_mount(demo_copy, tmp_path / "mounted") as folder:
        yield folder


def test_a_read_only_project_opens_for_browsing_with_editing_disabled(window, project_folder, qtbot, monkeypatch):
    assert window.project is not None and window.project.read_only
    assert [job.status for job in window.jobs] == ["done"]  # opening it wrote nothing and failed nothing
    assert "(read-only)" in window.windowTitle()
    assert any("is read-only: it is on a read-only file system" in line for line in window.log_panel.lines)
    editing = (
        "import_dataset",
        "import_files",
        "import_labels",
        "fit_all",
        "score_all",
        "label_mode",
        "commit_region",
        "delete_region",
        "class_1",
        "undo",
        "accept_proposal",
        "label_classes",
    )
    assert [name for name in editing if window.actions_by_name[name].isEnabled()] == []
    for name in ("play", "export_dcase", "export_labels", "next_clip", "toggle_map"):
        assert window.actions_by_name[name].isEnabled()
    assert not window.clip_properties.panel.isEnabled()
    assert not window.view.label_mode  # a drag never moves a region
    clip_id = window.table.model.rows[0].clip.clip_id
    with qtbot.waitSignal(window.clip_shown, timeout=10000):
        window.table.select(clip_id)
    assert window.view.display.clip_id == clip_id
    # showing a clip names the class keys again, and leaves them disabled
    assert [name for name in editing if window.actions_by_name[name].isEnabled()] == []

    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text, *a: told.append(text))
    assert window.score_files([str(project_folder / "project.sqlite")]) is None
    assert told and "is read-only" in told[0]
    assert sorted(p.name for p in project_folder.iterdir()) == ["artifacts", "project.sqlite"]


def test_label_mode_left_on_is_turned_off_when_a_read_only_project_opens(qtbot, demo_copy, tmp_path):
    from app.main_window import MainWindow

    window = MainWindow(use_audio=False)
    qtbot.addWidget(window)
    window.show()
    window.toggle_label_mode()  # on, for the project before
    try:
        with read_only_mount(demo_copy, tmp_path / "mounted") as folder:
            with qtbot.waitSignal(window.job_ended, timeout=10000):
                assert window.open_project(folder)
            assert not window.view.label_mode and not window.actions_by_name["label_mode"].isChecked()
            window.shutdown()
    finally:
        window.shutdown()
