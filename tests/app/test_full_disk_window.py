"""A job run from the window on a full disk ends with the same one line as on the command line ("the disk
holding PROJECT is full: N MB free"), not as an unexpected failure, and the project keeps what it had. The
project lives on a small tmpfs (see `tests.engine.test_full_disk`, skipped where it cannot be mounted)."""

from __future__ import annotations

import sqlite3

import pytest

from app import jobs
from engine.store import Project
from tests.engine.test_full_disk import fill, small_disk  # noqa: F401  (the fixture)


@pytest.fixture
def project_folder(small_disk):  # noqa: F811
    folder = small_disk / "project"
    Project.create(folder).close()
    return folder


def test_an_import_from_the_window_onto_a_full_disk_ends_with_the_one_line(qtbot, window, project_folder, toy_dataset):
    fill(project_folder.parent, leave=16 * 1024)  # room to work, not for 222 clips
    with qtbot.waitSignal(window.engine.worker.job_failed, timeout=60000) as failed:
        window.submit("import", "import the toy set", jobs.import_data(str(toy_dataset)))
    _, message = failed.args
    assert message.startswith(f"the disk holding {project_folder} is full: "), message
    with sqlite3.connect(project_folder / "project.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM clips").fetchone()[0] == 0
