"""A read-only project (a folder on a read-only mount, which not even root can write): the reading commands
work, the writing ones say in one line that it is read-only before doing any work, and nothing is written
next to project.sqlite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.errors import ProjectError
from engine.store import Project
from tests.damage import read_only_mount


@pytest.fixture(scope="module")
def scored_copy(tmp_path_factory, toy_dataset) -> Path:
    import torch

    from engine.data.importers import import_source
    from engine.detectors import runs
    from engine.jobs import Progress
    from engine.store.labels import Region, add_region

    folder = tmp_path_factory.mktemp("scored") / "project"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
        add_region(project, Region(project.clips()[0].clip_id, 0.1, 0.4, "LEAK"))
        session = runs.Session(project, torch.device("cpu"))
        runs.fit(session, "knn", None, None, Progress())
        runs.score(session, "knn", "test", None, Progress())
    return folder


@pytest.fixture
def read_only(scored_copy, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(scored_copy, source)
    with read_only_mount(source, tmp_path / "mounted") as folder:
        yield folder


def test_a_read_only_project_opens_for_reading(read_only):
    with Project.open(read_only) as project:
        assert project.read_only == "it is on a read-only file system"
        assert project.count_clips() > 0


@pytest.mark.parametrize(
    "words",
    [
        ["info", "{p}"],
        ["scores", "{p}"],
        ["evaluate", "{p}"],
        ["export", "dcase", "{p}", "{out}/dcase"],
        ["labels", "export", "{p}", "{out}/labels.csv"],
    ],
)
def test_reading_commands_work_on_a_read_only_project(read_only, tmp_path, capsys, words):
    assert cli([w.format(p=read_only, out=tmp_path) for w in words]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in read_only.iterdir()) == ["artifacts", "project.sqlite"]


@pytest.mark.parametrize(
    "words",
    [
        ["import", "{p}", "{out}"],
        ["fit", "{p}", "--detector", "knn"],
        ["score", "{p}", "--detector", "knn"],
        ["set", "{p}", "*", "--label", "normal"],
        ["labels", "import", "{p}", "{out}/labels.csv"],
        ["repair", "{p}"],
    ],
)
def test_writing_commands_say_the_project_is_read_only_in_one_line(read_only, tmp_path, capsys, words):
    (tmp_path / "labels.csv").write_text("clip_id,start_s,end_s,label\n")
    assert cli([w.format(p=read_only, out=tmp_path) for w in words]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"earmark: error: {read_only} is read-only: it is on a read-only file system"), err
    assert f"`earmark {' '.join(words[:2]) if words[0] == 'labels' else words[0]}` changes the project" in err


def test_an_older_read_only_project_is_named_rather_than_half_read(scored_copy, tmp_path):
    import sqlite3

    source = tmp_path / "old"
    shutil.copytree(scored_copy, source)
    with sqlite3.connect(str(source / "project.sqlite")) as conn:
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    with read_only_mount(source, tmp_path / "mounted") as folder:
        with pytest.raises(ProjectError, match="is read-only: .*schema"):
            Project.open(folder)


def test_an_immutable_project_file_is_read_only_too(scored_copy, tmp_path, capsys):
    """`chattr +i`: a file not even root may change, in a folder that may be written."""
    import subprocess

    folder = tmp_path / "immutable"
    shutil.copytree(scored_copy, folder)
    database = folder / "project.sqlite"
    made = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not available here ({made.stderr.strip() or made.returncode})")
    try:
        assert cli(["info", str(folder)]) == 0
        assert cli(["fit", str(folder), "--detector", "knn"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"earmark: error: {folder} is read-only: its file project.sqlite may not be written")
    finally:
        subprocess.run(["chattr", "-i", str(database)], capture_output=True)


def test_exporting_into_a_folder_that_cannot_be_written_says_so_in_one_line(scored_copy, tmp_path, capsys):
    """The project is fine; the chosen output folder is on a read-only disk."""
    (tmp_path / "shelf").mkdir()
    with read_only_mount(tmp_path / "shelf", tmp_path / "mounted") as shelf:
        assert cli(["export", "dcase", str(scored_copy), str(shelf / "dcase")]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"earmark: error: cannot write {shelf / 'dcase'}"), err
    assert err.endswith(": Read-only file system"), err


def test_a_read_only_copy_whose_latest_changes_are_only_in_the_wal_is_refused_not_shown_old(
    scored_copy, tmp_path, capsys
):
    """A copy taken while Earmark had the project open: project.sqlite-wal holds the latest label, and the
    -shm file that indexes it was not copied. On a read-only disk SQLite cannot read that log; showing the
    file alone would silently show the project as it was before."""
    import contextlib
    import sqlite3

    source = tmp_path / "source"
    shutil.copytree(scored_copy, source)
    copy = tmp_path / "copy"
    with contextlib.closing(sqlite3.connect(str(source / "project.sqlite"))) as conn:
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # keep the change in the log, as an open project does
        with conn:
            conn.execute("DELETE FROM regions")
        assert (source / "project.sqlite-wal").stat().st_size > 0
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*-shm"))
    assert not (copy / "project.sqlite-shm").exists() and (copy / "project.sqlite-wal").stat().st_size > 0
    with read_only_mount(copy, tmp_path / "mounted") as folder:
        with pytest.raises(ProjectError, match="latest changes are in project.sqlite-wal, which cannot be read"):
            Project.open(folder)
        assert cli(["info", str(folder)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "copy the project folder to a writable place" in err, err
