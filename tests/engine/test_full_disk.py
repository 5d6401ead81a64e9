"""A full disk stops the command with one line, "the disk holding PROJECT is full: N MB free", removes what
was half written and leaves the project's tables as they were.

The project lives on a small tmpfs mounted for the test (mounting needs root, or the capability to mount; the
tests are skipped, with that reason, where it is missing). The disk is then filled by a plain file, leaving a
few kilobytes: the command under test runs out of space in its own writes, as it would on a real disk."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.importers import import_source
from engine.detectors import runs
from engine.detectors.registry import load_model
from engine.errors import EarmarkError
from engine.store import Project, results

GROUP = "fan/section_00"


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def fill(disk: Path, leave: int) -> None:
    """Fill the disk with one file, then give back `leave` bytes."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 20))
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # the last chunk may still sit in the buffer: write what fits, byte blocks at a time
    with open(filler, "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def snapshot(folder: Path) -> tuple[list, list]:
    with sqlite3.connect(folder / "project.sqlite") as db:
        return (
            db.execute("SELECT * FROM models ORDER BY model_id").fetchall(),
            db.execute("SELECT * FROM scores ORDER BY model_id, clip_id").fetchall(),
        )


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if re.search(r"\.part(\.np[yz])?$|\.partial$", p.name)]


def assert_stopped_with_one_line(status: int, err: str, folder: Path) -> None:
    assert status == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert re.fullmatch(
        rf"earmark: error: the disk holding {re.escape(str(folder))} is full: \d+ MB free; .*", lines[-1]
    ), err
    assert "Traceback" not in err


@pytest.fixture
def project_on_small_disk(small_disk, toy_dataset) -> Path:
    folder = small_disk / "project"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
        runs.fit(runs.Session(project), "knn", group=GROUP)
    return folder


def test_scoring_on_a_full_disk_stops_with_one_line_and_leaves_no_partial_file(project_on_small_disk, capsys):
    before = snapshot(project_on_small_disk)
    fill(project_on_small_disk.parent, leave=48 * 1024)  # the test clips' features do not fit

    status = main(["score", str(project_on_small_disk), "--detector", "knn", "--group", GROUP])
    assert_stopped_with_one_line(status, capsys.readouterr().err, project_on_small_disk)
    assert partial_files(project_on_small_disk) == []
    assert snapshot(project_on_small_disk) == before
    (project_on_small_disk.parent / "filler").unlink()  # space again: the same command now works
    assert main(["score", str(project_on_small_disk), "--detector", "knn", "--group", GROUP]) == 0


def test_fitting_on_a_full_disk_records_no_model_and_leaves_no_partial_file(project_on_small_disk, capsys):
    before = snapshot(project_on_small_disk)
    models = sorted((project_on_small_disk / "artifacts" / "models").rglob("*"))
    fill(project_on_small_disk.parent, leave=0)

    status = main(["fit", str(project_on_small_disk), "--detector", "knn", "--group", GROUP])
    assert_stopped_with_one_line(status, capsys.readouterr().err, project_on_small_disk)
    assert partial_files(project_on_small_disk) == []
    assert snapshot(project_on_small_disk) == before
    assert sorted((project_on_small_disk / "artifacts" / "models").rglob("*")) == models
    with Project.open(project_on_small_disk) as project:
        for record in results.models(project):
            load_model(project_on_small_disk / record.artifact)


def test_a_database_write_on_a_full_disk_gives_the_same_line(project_on_small_disk):
    with Project.open(project_on_small_disk) as project:
        model = results.latest_models(project, "knn")[GROUP]
        clips = [c.clip_id for c in project.clips(split="test")]
        fill(project_on_small_disk.parent, leave=0)
        rows = [(clip_id, 1.0, True, "x" * 4000, 0.0) for clip_id in clips]
        with pytest.raises(EarmarkError) as raised:
            results.write_scores(project, model.model_id, rows)
        assert re.match(
            rf"the disk holding {re.escape(str(project_on_small_disk))} is full: \d+ MB free", str(raised.value)
        ), repr(raised.value)
        assert project.db.execute("SELECT count(*) FROM scores").fetchone()[0] == 0


def test_importing_onto_a_full_disk_gives_the_same_line_and_adds_nothing(small_disk, toy_dataset, capsys):
    folder = small_disk / "project"
    with Project.open(Project.create(folder).folder) as project:  # its -wal and -shm files exist
        project.clips()
        fill(small_disk, leave=16 * 1024)  # room to open the project, not for 222 clips

    status = main(["import", str(folder), str(toy_dataset)])
    assert_stopped_with_one_line(status, capsys.readouterr().err, folder)
    with sqlite3.connect(folder / "project.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM clips").fetchone()[0] == 0
    assert partial_files(folder) == []


def test_reading_a_project_on_a_full_disk_says_the_disk_is_full(small_disk, capsys):
    """SQLite cannot create the project's -wal and -shm files on a full disk and says only "disk I/O
    error": the user is told the disk is full, as for any other command."""
    folder = small_disk / "project"
    Project.create(folder).close()  # closed cleanly: no -wal or -shm left beside the file
    fill(small_disk, leave=0)

    status = main(["info", str(folder)])
    assert_stopped_with_one_line(status, capsys.readouterr().err, folder)
    (small_disk / "filler").unlink()  # space again: the same command now works
    assert main(["info", str(folder)]) == 0


def test_creating_a_project_on_a_full_disk_says_the_disk_is_full(small_disk):
    """The window's File > New project calls Project.create directly: it needs the one message too."""
    fill(small_disk, leave=0)
    with pytest.raises(EarmarkError) as raised:
        Project.create(small_disk / "project").close()
    assert re.match(
        rf"the disk holding {re.escape(str(small_disk))}(/project)? is full: \d+ MB free", str(raised.value)
    ), raised.value
