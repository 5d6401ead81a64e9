"""The `earmark` console script.

`earmark` (or `earmark open [PROJECT]`) opens the window; `earmark demo` opens it on the demo project,
building the project in the background when it is not there yet; `earmark demo --screenshot PNG` renders
the window to a file without a display. Every other sub-command is handed to `engine.cli` without
importing Qt, so it runs on machines with no display and starts quickly.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return run_window()
    if args[0] == "open":
        from engine.cli import parse  # answers --help and bad usage itself, as for every other command

        options = parse(args)
        if isinstance(options, int):
            return options
        return run_window(project=None if options.project is None else str(options.project))
    if args[0] == "demo" and not any(a in ("-h", "--help", "--no-gui") for a in args):
        from engine.cli import build_parser

        options = build_parser().parse_args(args)
        if options.screenshot is None and not display_available():
            print(
                "earmark: no display found, so the demo runs in the terminal (use --screenshot PNG to render "
                "the window to a file)",
                file=sys.stderr,
            )
            options.no_gui = True
        else:
            return run_window(demo=options)
    from engine.cli import main as cli_main

    return cli_main(args)


def display_available() -> bool:
    """Whether a window can be seen: not on the offscreen platform (tests, CI) nor without a display."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] not in ("offscreen", "minimal", "vnc")
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_window(project: str | None = None, demo=None) -> int:
    # What the command line got wrong (not a project, a device this machine lacks) is said there, before
    # any window opens.
    from engine.errors import EarmarkError
    from engine.store import Project

    try:
        if project is not None:
            Project.open(project).close()
        if demo is not None and demo.device:
            from engine.device import pick_device  # torch: only when a device was asked for

            pick_device(demo.device)
    except EarmarkError as exc:
        print(f"earmark: error: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        from engine.store.health import database_error

        print(f"earmark: error: {database_error(project or '.', exc)}", file=sys.stderr)
        return 1
    if demo is not None and demo.screenshot is not None and not display_available():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    from app.engine_thread import hold_engine_until_drawn
    from app.main_window import MainWindow
    from app.startup import open_demo

    hold_engine_until_drawn()  # torch and the engine load on the engine thread once the window is drawn

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Earmark")
    icon = Path(__file__).resolve().parents[1] / "resources" / "icons" / "earmark.svg"
    if icon.is_file():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    first_paint = watch_first_paint(app)
    window.show()
    outcome = {"status": 0}
    try:
        if demo is not None:
            open_demo(window, demo, outcome)
        elif project is not None:
            if not window.open_project(Path(project)):
                outcome["status"] = 1
        elif window.settings.recent_projects() and Path(window.settings.recent_projects()[0]).is_dir():
            window.open_project(window.settings.recent_projects()[0])  # a bad one is named; the window stays
        app.exec()
    except (EarmarkError, sqlite3.DatabaseError) as exc:  # e.g. a damaged demo project: one line, no window
        from engine.store.health import database_error

        message = exc if isinstance(exc, EarmarkError) else database_error(project or ".", exc)
        print(f"earmark: error: {message}", file=sys.stderr)
        outcome["status"] = 1
    finally:  # even after an error: a QThread destroyed while running aborts the process (status 134)
        first_paint.release()
        window.shutdown()
    return int(outcome["status"])


def watch_first_paint(app):
    """Lets the engine thread load torch once anything of the window has been painted (or after 2 s)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    from app.engine_thread import window_drawn

    class _FirstPaint(QObject):
        def eventFilter(self, watched, event) -> bool:  # noqa: N802  (Qt's name)
            if event.type() == QEvent.Type.Paint:
                self.release()
            return False

        def release(self) -> None:
            window_drawn()
            if self.parent() is not None:
                self.parent().removeEventFilter(self)

    watcher = _FirstPaint(app)
    app.installEventFilter(watcher)
    QTimer.singleShot(2000, watcher.release)
    return watcher


if __name__ == "__main__":
    sys.exit(main())
