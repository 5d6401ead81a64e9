"""Two Earmark processes on one project: a writer waits for the other instead of failing, and two imports of
the same folder at once add each file once. The other processes are real: a child Python holding SQLite's
write lock, `earmark labels import` and `earmark import` run as subprocesses; the import race is also played
step by step with a second connection writing between one import's look at the project and its write."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.data.importers import import_source
from engine.errors import ProjectError
from engine.jobs import Progress
from engine.store import Project, labels
from tests.helpers import tone, write_wav

ROOT = Path(__file__).resolve().parents[2]
#: A child process that takes the project's write lock, says so, and keeps it until told (or the test ends).
HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO meta (key, value) VALUES ('long_write', 'in progress')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _earmark(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.main", *args],
        cwd=ROOT,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class WriteLock:
    """Another process in the middle of a long write (a big import): it holds the write lock until released."""

    def __init__(self, project: Path) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(project / "project.sqlite")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.child.communicate("done\n", timeout=30)
        assert self.child.returncode == 0

    def release_after(self, commands: list[subprocess.Popen]) -> list[tuple[str, str]]:
        """Release the lock once the commands started meanwhile have all ended (before the change, those that
        failed on the lock did so within a second) or after 2.5 s (by then each is waiting for it); their
        (stdout, stderr) once they are done."""
        started = time.monotonic()
        while any(c.poll() is None for c in commands) and time.monotonic() - started < 2.5:
            time.sleep(0.05)
        self.release()
        return [c.communicate(timeout=60) for c in commands]


@pytest.fixture
def recordings(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    for n in range(4):
        write_wav(folder / f"pump_{n}.wav", tone(0.5, freq=200.0 + 150 * n))
    return folder


@pytest.fixture
def plant(tmp_path, recordings) -> Path:
    folder = tmp_path / "plant"
    with Project.create(folder) as project:
        import_source(project, recordings, "folder")
    return folder


def test_label_imports_during_another_process_long_write_all_land(plant, tmp_path):
    # The 22 label imports during a 1M-line import, at CI size: four imports, each of its own
    # Audacity label file, started while another process holds the write lock.
    files = []
    for n in range(4):
        path = tmp_path / f"pump_{n}.txt"
        path.write_text(f"0.1\t0.2\tleak\n0.25\t0.4\trattle_{n}\n")
        files.append(path)
    lock = WriteLock(plant)
    imports = [_earmark("labels", "import", str(plant), str(path)) for path in files]
    results = lock.release_after(imports)
    assert [p.returncode for p in imports] == [0, 0, 0, 0], [err for _, err in results]
    assert not any("locked" in err for _, err in results)
    with Project.open(plant) as project:
        stored = labels.regions(project, kinds=("manual",))
        assert sorted((r.clip_id, r.label) for r in stored) == sorted(
            [(f"pump_{n}", "leak") for n in range(4)] + [(f"pump_{n}", f"rattle_{n}") for n in range(4)]
        )
        assert {c.name for c in project.label_classes()} >= {"leak", "rattle_0", "rattle_1", "rattle_2", "rattle_3"}
        # The long write committed too: nobody's work was lost.
        assert project.db.execute("SELECT value FROM meta WHERE key = 'long_write'").fetchone() == ("in progress",)


def test_a_writer_that_waits_is_told_how_long_until_the_lock_is_free(plant):
    # The window registers such a callback: it shows that it waits, and keeps drawing meanwhile.
    lock = WriteLock(plant)
    waited: list[float] = []

    def waiting(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 3:
            lock.release()

    with Project.open(plant) as project:
        project.on_wait(waiting, step_s=0.05)
        stored = labels.add_region(project, labels.Region("pump_0", 0.1, 0.3, "leak"))
    assert len(waited) == 3 and waited == sorted(waited)
    with Project.open(plant) as project:
        assert labels.region(project, stored.region_id).label == "leak"


def test_a_command_line_writer_prints_that_it_waits(plant, capfd, monkeypatch):
    monkeypatch.setattr("engine.store.project.BUSY_TIMEOUT_S", 0.2)
    lock = WriteLock(plant)
    timer = threading.Timer(0.8, lock.release)
    timer.start()
    with Project.open(plant) as project:
        labels.add_region(project, labels.Region("pump_1", 0.1, 0.3, "leak"))
    timer.join()
    assert "waiting for another Earmark process to finish writing" in capfd.readouterr().err
    with Project.open(plant) as project:
        assert [r.clip_id for r in labels.regions(project, kinds=("manual",))] == ["pump_1"]


def test_a_writer_that_waits_too_long_gives_up_with_a_message_and_changes_nothing(plant, monkeypatch):
    monkeypatch.setattr("engine.store.project.BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr("engine.store.project.WRITE_WAIT_S", 0.3)
    lock = WriteLock(plant)
    try:
        with Project.open(plant) as project:
            with pytest.raises(ProjectError, match="another Earmark process has been writing"):
                labels.add_region(project, labels.Region("pump_2", 0.1, 0.3, "leak"))
    finally:
        lock.release()
    with Project.open(plant) as project:
        assert labels.regions(project, kinds=("manual",)) == []


def test_two_imports_of_the_same_folder_at_once_add_each_file_once(plant, recordings, tmp_path):
    # A second import (another process, here a second connection) writes the same files between this
    # import's look at what the project holds and its own write: this one skips them instead of failing.
    more = tmp_path / "more"
    for n in range(3):
        write_wav(more / f"valve_{n}.wav", tone(0.5, freq=900.0 + 100 * n))
    others: list = []

    def the_other_import_gets_there_first(done: int, total: int, message: str) -> None:
        if not others:
            with Project.open(plant) as other:
                others.append(import_source(other, more, "folder"))

    with Project.open(plant) as project:
        report = import_source(project, more, "folder", Progress(the_other_import_gets_there_first))
        assert others[0].added == 3
        assert (report.added, report.already_present, report.problems) == (0, 3, [])
        assert report.clip_ids == others[0].clip_ids
        assert project.count_clips() == 4 + 3
        assert project.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_two_earmark_imports_of_one_folder_started_together_both_succeed(plant, tmp_path):
    # Both processes look at what the project holds, read the files, and meet another writer's lock; when it
    # is released one writes the files and the other finds them there.
    more = tmp_path / "more"
    for n in range(3):
        write_wav(more / f"valve_{n}.wav", tone(0.5, freq=900.0 + 100 * n))
    lock = WriteLock(plant)
    imports = [_earmark("import", str(plant), str(more), "--format", "folder") for _ in range(2)]
    results = lock.release_after(imports)
    assert [p.returncode for p in imports] == [0, 0], [err for _, err in results]
    summaries = sorted(out.splitlines()[0] for out, _ in results)
    assert summaries[0].startswith("Imported 0 clip(s)") and "3 already in the project" in summaries[0]
    assert summaries[1].startswith("Imported 3 clip(s)")
    with Project.open(plant) as project:
        assert project.count_clips() == 4 + 3
