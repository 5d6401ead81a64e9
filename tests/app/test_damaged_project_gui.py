"""The window and a damaged project: it never aborts. A damaged recent project is named in a message when the
window starts, the window opens empty, and the project leaves the recent list only if the user agrees."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app import clip_data
from app.main_window import MainWindow
from app.settings import AppSettings
from tests.damage import damage_page

ROOT = Path(__file__).parents[2]


@pytest.fixture
def damaged_demo(demo_copy) -> Path:
    damage_page(demo_copy / "project.sqlite", "clips")
    return demo_copy


@pytest.fixture
def empty_window(qtbot):
    win = MainWindow(use_audio=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


@pytest.mark.parametrize("agree", [False, True])
def test_a_damaged_recent_project_is_named_and_leaves_the_recent_list_only_if_the_user_agrees(
    empty_window, damaged_demo, monkeypatch, agree
):
    window = empty_window
    window.settings.add_recent(str(damaged_demo.resolve()))
    asked: list[str] = []

    def answer(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QMessageBox.StandardButton.Yes if agree else QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)
    assert not window.open_project(damaged_demo)
    assert window.project is None  # the window stays up, empty
    assert len(asked) == 1
    assert "is damaged" in asked[0] and f"earmark repair {damaged_demo}" in asked[0]
    assert any("is damaged" in line for line in window.log_panel.lines)
    assert (str(damaged_demo.resolve()) in window.settings.recent_projects()) is not agree
    assert damaged_demo.is_dir()  # the folder itself is left alone


def test_damage_met_while_the_project_is_open_is_shown_once_and_the_window_goes_on(window, monkeypatch, qtbot):
    def malformed(*args) -> dict:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(clip_data, "table_rows", malformed)  # the first read of a refresh
    window.refresh()
    window.refresh()
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "database_error"]
    assert len(boxes) == 1 and boxes[0].isVisible()
    assert "is damaged" in boxes[0].text() and "earmark repair" in boxes[0].text()


CHILD = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox
    from app.main import run_window
    from app.main_window import MainWindow

    app = QApplication([])

    def answer():  # the user reads the message, answers No, then quits
        for widget in app.topLevelWidgets():
            if isinstance(widget, QMessageBox) and widget.isVisible():
                print("MESSAGE:", widget.text().replace("\\n", " "), flush=True)
                widget.button(QMessageBox.StandardButton.No).click()
                windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
                QTimer.singleShot(0, lambda: (print("OPEN:", windows[0].project, flush=True), app.quit()))
                return
        QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)
    sys.exit(run_window())
""")


@pytest.mark.skipif(sys.platform == "win32", reason="the child reads the same gui.ini through the environment")
def test_earmark_starts_on_a_damaged_recent_project_without_aborting(damaged_demo, tmp_path):
    settings = AppSettings()
    settings.add_recent(str(damaged_demo.resolve()))
    settings.sync()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "MESSAGE:" in done.stdout and "is damaged" in done.stdout and "earmark repair" in done.stdout
    assert "OPEN: None" in done.stdout  # opened empty
    from engine.weights import config_dir

    assert str(damaged_demo.resolve()) in (config_dir() / "gui.ini").read_text()  # the user said No


def test_the_demo_on_a_damaged_demo_project_says_so_in_one_line(damaged_demo, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.main",
            "demo",
            "--project",
            str(damaged_demo),
            "--screenshot",
            str(tmp_path / "shot.png"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("earmark: error: ")]
    assert len(errors) == 1 and "is damaged" in errors[0] and "earmark repair" in errors[0]
