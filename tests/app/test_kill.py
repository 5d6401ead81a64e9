"""A labelling session killed right after an edit loses nothing: a real child process runs the window,
makes edits with the keyboard, says so, and is killed with SIGKILL (no clean-up of any kind runs); the
project then holds every edit and passes SQLite's integrity check."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import sys
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from app.engine_thread import preload_engine
    from app.main_window import MainWindow

    preload_engine()  # as the console script does before the window opens
    app = QApplication([])
    window = MainWindow(use_audio=False)
    window.show()
    window.open_project(sys.argv[1])
    while window.engine.worker.busy() or window.table.model.rowCount() == 0:
        QTest.qWait(20)
    clip_id = window.table.model.rows[0].clip.clip_id
    window.table.select(clip_id)
    QTest.qWait(100)
    keys = window.table.view

    def at(seconds):
        window.playback.seek(seconds)
        window.view.set_playhead(seconds)

    at(0.25); QTest.keyClick(keys, Qt.Key.Key_BracketLeft)
    at(0.75); QTest.keyClick(keys, Qt.Key.Key_BracketRight)
    QTest.keyClick(keys, Qt.Key.Key_Return)                          # a LEAK region, 0.25-0.75 s
    at(1.0); QTest.keyClick(keys, Qt.Key.Key_BracketLeft)
    at(1.5); QTest.keyClick(keys, Qt.Key.Key_BracketRight)
    QTest.keyClick(keys, Qt.Key.Key_Return)                          # a second one, 1.0-1.5 s
    second = max(r.region_id for r in window.region_table.visible_regions() if r.kind == "manual")
    window.view.region_clicked.emit(second)                          # the user clicks it on the spectrogram
    QTest.keyClick(keys, Qt.Key.Key_3)                               # relabelled as the third class
    at(1.25); QTest.keyClick(keys, Qt.Key.Key_BracketRight, Qt.KeyboardModifier.ControlModifier)  # end 1.25
    print("EDITED", clip_id, flush=True)
    app.exec()                                                       # the user carries on; the kill comes
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is a POSIX signal")
def test_a_process_killed_right_after_an_edit_loses_nothing(demo_copy, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(Path(__file__).parents[2])}
    env["EARMARK_CONFIG_DIR"] = str(tmp_path / "config")  # the child's recent-projects list stays its own
    child = subprocess.Popen(
        [sys.executable, str(script), str(demo_copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and not line.startswith("EDITED"):
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                pytest.fail(f"the child process ended early: {child.stderr.read()[-2000:]}")
        os.kill(child.pid, signal.SIGKILL)  # at once: no atexit, no Qt shutdown, no database close
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert line.startswith("EDITED"), "the child never reported its edits"
    clip_id = line.split(maxsplit=1)[1].strip()
    with sqlite3.connect(demo_copy / "project.sqlite") as db:
        classes = [name for (name,) in db.execute("SELECT name FROM label_classes ORDER BY position")]
        rows = db.execute(
            "SELECT start_s, end_s, label FROM regions WHERE clip_id = ? AND kind = 'manual' ORDER BY start_s",
            [clip_id],
        ).fetchall()
        assert rows == [(0.25, 0.75, classes[0]), (1.0, 1.25, classes[2])]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
