"""A `score` or `fit` killed with SIGKILL at any moment leaves a project that works: SQLite's integrity check
passes, every stored score's frame scores and every recorded model read back, `evaluate` runs, and scoring
again puts back whatever the kill cut short.

The child is the real command line in its own process. A kill at a random time would rarely land inside a
write (they take microseconds), so the child kills itself with SIGKILL at a randomly chosen file-system step
of the run instead: a write to a file in the project, an fsync or a rename. A first run, not killed, counts
those steps; each repetition then picks one at random. Nothing runs after the kill: no handler, no clean-up.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.cli import main
from engine.detectors import runs
from engine.detectors.registry import load_model
from engine.store import Project, results

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is a POSIX signal")

#: Runs `earmark ARGS...`, killing itself at the KILL_AT-th write / fsync / rename under PROJECT (0: never,
#: and the number of such steps is written to COUNT_FILE at the end).
CHILD = textwrap.dedent("""
    import builtins, io, os, signal, sys
    project, kill_at, count_file, *argv = sys.argv[1:]
    project, kill_at, steps = os.path.realpath(project), int(kill_at), [0]

    def step():
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def inside(path):
        try:
            return os.path.realpath(os.fspath(path)).startswith(project + os.sep)
        except TypeError:
            return False

    class Counted:
        def __init__(self, handle): self._handle = handle
        def write(self, data):
            step()
            return self._handle.write(data)
        def __getattr__(self, name): return getattr(self._handle, name)
        def __enter__(self): return self
        def __exit__(self, *exc): return self._handle.__exit__(*exc)

    real_open = io.open
    def counted_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return Counted(handle) if any(m in mode for m in "wxa+") and inside(file) else handle
    builtins.open = io.open = counted_open

    for name in ("replace", "rename", "fsync"):
        def counted(*args, _real=getattr(os, name), **kwargs):
            step()
            return _real(*args, **kwargs)
        setattr(os, name, counted)

    from engine.cli import main
    status = main(argv)
    with real_open(count_file, "w") as handle:
        handle.write(str(steps[0]))
    sys.exit(status)
""")


def run_child(tmp_path: Path, project: Path, kill_at: int, *argv: str) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(script), str(project), str(kill_at), str(tmp_path / "steps"), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def count_steps(tmp_path: Path, project: Path, *argv: str) -> int:
    done = run_child(tmp_path, project, 0, *argv)
    assert done.returncode == 0, done.stderr[-2000:]
    return int((tmp_path / "steps").read_text())


def assert_the_project_works(folder: Path, capsys) -> None:
    """Integrity check, every recorded artifact reads, `evaluate` runs; then a rescore leaves every score whole."""
    with sqlite3.connect(folder / "project.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Project.open(folder) as project:
        for record in results.models(project):
            load_model(folder / record.artifact)  # raises if a row points at unwritten weights
        for row in results.latest_scores(project):
            results.load_lanes(project, row.map_artifact)  # raises if a stored score points at a cut file
    capsys.readouterr()
    status, said = main(["evaluate", str(folder)]), capsys.readouterr().err
    # A fit that completed a model before the kill leaves a model without scores yet: said so in one line.
    assert status == 0 or said.startswith("earmark: error: no scores for labelled test clips"), said
    with Project.open(folder) as project:
        runs.score(runs.Session(project), "knn")
        scored = results.latest_scores(project)
        assert scored and all(results.load_lanes(project, row.map_artifact) for row in scored)
    assert main(["evaluate", str(folder)]) == 0, capsys.readouterr().err


@pytest.fixture
def scored_project(toy_project) -> Path:
    session = runs.Session(toy_project)
    runs.fit(session, "knn")
    runs.score(session, "knn")
    folder = toy_project.folder
    toy_project.close()
    return folder


@pytest.mark.parametrize(
    "command",
    [("score", "--detector", "knn", "--group", "fan/section_00"), ("fit", "--detector", "knn")],
    ids=["rescore", "fit"],
)
def test_a_command_killed_at_any_write_leaves_a_project_that_works(command, scored_project, tmp_path, capsys):
    argv = (command[0], str(scored_project), *command[1:])
    steps = count_steps(tmp_path, scored_project, *argv)
    seed = random.randrange(1 << 30)
    chosen = random.Random(seed).sample(range(1, steps + 1), k=min(3, steps))
    for kill_at in chosen:
        killed = run_child(tmp_path, scored_project, kill_at, *argv)
        assert killed.returncode == -signal.SIGKILL, f"step {kill_at} of {steps} (seed {seed}): {killed.stderr}"
        assert_the_project_works(scored_project, capsys)
