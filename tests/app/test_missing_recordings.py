"""In the window: File > Locate missing recordings... finds moved files and re-points their clips (checksums
checked, as an engine job), and the clip table's QA column names recordings that are too short or silent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.data.importers import import_files
from engine.store import Project
from engine.store.relocate import missing_clips
from tests.helpers import write_wav


@pytest.fixture
def moved_project(tmp_path) -> tuple[Path, Path]:
    """A project of three recordings whose folder was then moved to `new`; returns (project, new)."""
    old, new = tmp_path / "field" / "day1", tmp_path / "archive" / "2026" / "day1"
    rng = np.random.default_rng(0)
    write_wav(old / "pump_a.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32))
    write_wav(old / "pump_b.wav", np.zeros(16000, np.float32))
    write_wav(old / "blip.wav", (0.1 * rng.standard_normal(160)).astype(np.float32))
    with Project.create(tmp_path / "plant") as project:
        import_files(project, sorted(old.glob("*.wav")))
    new.parent.mkdir(parents=True)
    shutil.move(str(old), str(new))
    return tmp_path / "plant", new


@pytest.fixture
def project_folder(moved_project):
    return moved_project[0]  # the window opens the project whose recordings were moved


def test_locating_missing_recordings_repoints_them_from_the_file_menu(qtbot, window, moved_project):
    from app.dialogs.locate import LocateMissingDialog

    project, new = moved_project
    menu_entries = {a.objectName() for a in window.actions()}
    assert "locate_missing" in menu_entries
    dialog = LocateMissingDialog(missing_clips(window.project), window)
    assert dialog.table.rowCount() == 3
    assert dialog.chosen_folder() == str(project.parent / "field")  # the nearest folder still there
    dialog.folder.setText(str(new.parent.parent))

    with qtbot.waitSignal(window.job_ended, timeout=30000) as ended:
        window.locate_missing(dialog.chosen_folder())

    assert ended.args[1] == "done"
    assert missing_clips(window.project) == []
    assert {Path(c.path).parent for c in window.project.clips()} == {new.resolve()}
    assert any(line.startswith("Re-pointed 3 clip(s)") for line in window.log_panel.lines)


def test_the_clip_table_names_short_and_silent_recordings_in_its_qa_column(window):
    model = window.table.model
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    qa = headers.index("QA")
    cells = {model.rows[r].name: model.index(r, qa).data() for r in range(model.rowCount())}
    assert cells == {"pump_a.wav": "", "pump_b.wav": "silent", "blip.wav": "too short"}
