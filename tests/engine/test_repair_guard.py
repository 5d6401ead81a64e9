"""`earmark repair` loses nothing besides the damaged pages: it refuses while another process has the project
open (their commits would go into the replaced file), refuses on a disk without room and leaves no half copy
when the disk fills anyway, clears what a stopped repair left, keeps a lost model's scores from passing to the
next model, and tells a read-only damaged project to be repaired as a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from engine.cli import main as cli
from engine.detectors import runs
from engine.jobs import Progress
from engine.store import Project, repair_guard
from tests.damage import count_rows, damage_page, read_only_mount, settle
from tests.engine.test_damaged_projects import damaged, scored_project  # noqa: F401  (fixtures)
from tests.engine.test_full_disk import fill, small_disk  # noqa: F401  (fixture)

ROOT = Path(__file__).parents[2]


def _listing(folder: Path) -> list[str]:
    """The folder's files, but SQLite's shared-memory index (made by any reader)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith("-shm"))


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


class OtherProcess:
    """A second Earmark process with the project open: it runs `code` with `project` (or `conn`) open, says
    "ready", then waits for a line on its input before running `then` and closing."""

    def __init__(self, folder: Path, code: str, then: str = "") -> None:
        head = (
            f"import sqlite3, sys\nfrom engine.store import Project\nfrom engine.store.labels import Region, "
            f"add_region\nfolder = {str(folder)!r}\n"
        )
        script = (
            head
            + textwrap.dedent(code)
            + '\nprint("ready", flush=True)\nsys.stdin.readline()\n'
            + textwrap.dedent(then)
        )
        self.child = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.child.stdout.readline().strip() == "ready"

    def finish(self) -> None:
        self.child.communicate("go\n", timeout=120)
        assert self.child.returncode == 0


def test_repair_refuses_while_a_window_has_the_project_open_and_its_labels_survive(scored_project, tmp_path, capsys):
    folder = tmp_path / "open"
    shutil.copytree(scored_project, folder)
    labels = count_rows(folder / "project.sqlite", "regions")
    window = OtherProcess(
        folder,
        """
        project = Project.open(folder)
        clip = project.clips()[0].clip_id
        for i in range(10):
            with project.db.atomic():
                add_region(project, Region(clip, 0.01 * i, 0.01 * i + 0.005, "LEAK"))
    """,
        then="""
        with project.db.atomic():
            add_region(project, Region(clip, 0.5, 0.6, "LEAK"))
        project.close()
    """,
    )
    before = _listing(folder)
    assert cli(["repair", str(folder), "--force"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"close the window and other Earmark processes on {folder} first; nothing was changed" in line
    assert _listing(folder) == before  # no copy, no fresh file: the project was not touched
    window.finish()  # the window goes on writing after the refusal, then closes
    assert count_rows(folder / "project.sqlite", "regions") == labels + 11
    assert cli(["repair", str(folder), "--force"]) == 0  # closed: now it repairs, every label kept
    assert count_rows(folder / "project.sqlite", "regions") == labels + 11


def test_repair_refuses_while_another_process_holds_a_write_lock(damaged, capsys):
    folder, before, _ = damaged
    original = (folder / "project.sqlite").read_bytes()
    writer = OtherProcess(
        folder,
        """
        conn = sqlite3.connect(folder + "/project.sqlite", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    """,
        then='conn.execute("ROLLBACK")',
    )
    assert cli(["repair", str(folder)]) == 1
    assert "close the window and other Earmark processes" in _one_line(capsys.readouterr().err)
    assert (folder / "project.sqlite").read_bytes() == original
    assert not list(folder.glob("project.sqlite.damaged-*"))
    writer.finish()
    assert cli(["repair", str(folder)]) == 0


@pytest.fixture
def damaged_on_small_disk(small_disk, toy_dataset) -> Path:  # noqa: F811
    from engine.data.importers import import_source

    folder = small_disk / "project"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
    settle(folder / "project.sqlite")
    damage_page(folder / "project.sqlite", "clips")
    return folder


def test_repair_refuses_on_a_disk_without_room_for_the_copy_and_the_fresh_file(damaged_on_small_disk, capsys):
    folder = damaged_on_small_disk
    original = (folder / "project.sqlite").read_bytes()
    fill(folder.parent, leave=len(original) // 2)
    before = _listing(folder)
    assert cli(["repair", str(folder)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"the disk holding {folder} has" in line and "nothing was changed" in line, line
    assert _listing(folder) == before  # no half copy of the damaged file
    assert (folder / "project.sqlite").read_bytes() == original
    (folder.parent / "filler").unlink()
    assert cli(["repair", str(folder)]) == 0


def test_a_disk_that_fills_during_repair_leaves_no_half_copy(damaged_on_small_disk, capsys, monkeypatch):
    """Another program fills the disk after the check: the copy fails, and is not kept."""
    folder = damaged_on_small_disk
    original = (folder / "project.sqlite").read_bytes()
    fill(folder.parent, leave=len(original) // 2)
    monkeypatch.setattr(repair_guard, "check_space", lambda database: None)  # room when it was checked
    before = _listing(folder)
    assert cli(["repair", str(folder)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"the disk holding {folder} is full" in line, line
    assert _listing(folder) == before
    assert (folder / "project.sqlite").read_bytes() == original


def test_a_repair_killed_partway_leaves_nothing_behind_once_repair_runs_again(damaged):
    folder, _, _ = damaged
    script = textwrap.dedent(f"""
        import os, signal
        from engine.store import repair
        def killed(*args, **kwargs):  # kill -9 while the fresh file is being filled
            os.kill(os.getpid(), signal.SIGKILL)
        repair._copy_table = killed
        repair.repair({str(folder)!r})
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    assert list(folder.glob("project.sqlite.repairing-*"))  # the killed repair's fresh file
    assert cli(["repair", str(folder)]) == 0
    assert not list(folder.glob("project.sqlite.repairing-*"))
    assert not list(folder.glob(".*.part"))


def test_files_left_by_a_stopped_repair_are_removed_by_the_next(damaged, capsys):
    folder, _, _ = damaged
    stopped = [
        folder / "project.sqlite.repairing-20260101-000000",
        folder / "project.sqlite.repairing-20260101-000000-journal",
        folder / ".project.sqlite.damaged-20260101-000000.0123abcd.part",
    ]
    for path in stopped:
        path.write_bytes(b"\0" * 4096)
    assert cli(["repair", str(folder)]) == 0
    assert "3 file(s) left by an earlier repair that was stopped were removed" in capsys.readouterr().out
    assert not any(path.exists() for path in stopped)
    # with nothing to repair, only old ones go: a new one may belong to a repair still running
    old, new = folder / "project.sqlite.repairing-old-journal", folder / "project.sqlite.repairing-new-journal"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert cli(["repair", str(folder)]) == 0
    assert not old.exists() and new.exists()


def test_a_lost_models_scores_do_not_pass_to_the_next_model(scored_project, tmp_path, capsys):
    folder = tmp_path / "models"
    shutil.copytree(scored_project, folder)
    database = folder / "project.sqlite"
    scores = count_rows(database, "scores")
    assert scores > 0
    damage_page(database, "models", index=-1)  # the newest models: the next fit gets their ids again
    assert cli(["repair", str(folder)]) == 0
    removed = scores - count_rows(database, "scores")
    assert removed > 0
    assert f"{removed} scores of lost models removed: score the clips again" in capsys.readouterr().out
    with Project.open(folder) as project:
        kept = {r[0] for r in project.db.execute("SELECT model_id FROM models")}
        session = runs.Session(project, torch.device("cpu"))
        runs.fit(session, "knn", None, None, Progress())
        new = {r[0] for r in project.db.execute("SELECT model_id FROM models")} - kept
        inherited = f"SELECT count(*) FROM scores WHERE model_id IN ({', '.join(map(str, new))})"
        assert project.db.execute(inherited).fetchone()[0] == 0  # not scored by the new models yet
        runs.score(session, "knn", "test", None, Progress())
        assert project.db.execute(inherited).fetchone()[0] > 0


def test_a_damaged_read_only_project_is_told_to_repair_a_copy(damaged, tmp_path, capsys):
    folder, _, _ = damaged
    with read_only_mount(folder, tmp_path / "ro") as mounted:
        assert cli(["info", str(mounted)]) == 1
        line = _one_line(capsys.readouterr().err)
        assert "is damaged" in line and "read-only" in line, line
        assert "copy the project folder to a writable place and run `earmark repair` on the copy" in line
        assert f"earmark repair {mounted}" not in line
