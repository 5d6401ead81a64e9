"""Writes docs/labelling.png, the README's picture of the labelling flow: a copy of the demo project (made by
`earmark demo`), the most anomalous clip with proposals from patch_memory, one accepted, labels of two
classes made with the keyboard flow, a time-frequency box, and the region table.

    QT_QPA_PLATFORM=offscreen python docs/make_labelling_screenshot.py [projects/demo] [docs/labelling.png]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from engine.store import labels


def main(source: Path, out: Path) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.main_window import MainWindow
    from app.startup import showcase_clip

    with tempfile.TemporaryDirectory() as temp:
        project = Path(temp) / "demo"
        shutil.copytree(source, project, ignore=shutil.ignore_patterns("audio", "features"))
        window = MainWindow(use_audio=False)
        window.resize(1800, 1000)
        window.show()
        window.open_project(project)
        wait(app, lambda: not window.engine.worker.busy())
        clip_id = showcase_clip(window)
        wait(app, lambda: window.view.overview is not None and window.view.display.clip_id == clip_id)
        window.proposal_panel.detector.setCurrentText("patch_memory")
        window.proposal_panel.on.set_value(0.8)
        window.proposal_panel.off.set_value(0.6)
        window.propose_clip()
        pending = labels.regions(window.project, clip_id, ("proposal",))
        if pending:
            window.editor.select(pending[0].region_id)
            window.accept_proposal()
        editor = window.editor
        editor.clear_marks()  # the next proposal stays pending
        duration = window.view.display.duration_s
        editor.choose_class(1)  # NORMAL: a stretch of ordinary running, marked with [ and ]
        editor.mark_start(0.02 * duration)
        editor.mark_end(0.12 * duration)
        editor.commit_marks()
        editor.clear_marks()
        editor.choose_class(4)
        editor.create(0.62 * duration, 0.74 * duration, 400.0, 2500.0)  # MECHANICAL, a time-frequency box
        editor.clear_marks()
        return save_window(app, window, out)


def save_window(app: QApplication, window, out: Path) -> int:
    """The window as a user sees it, Jobs dock hidden, written to `out`; the window is shut down. Exit status."""
    window.docks["jobs"].hide()
    wait(app, lambda: False, 600)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(out))
    window.shutdown()
    print(f"wrote {out}" if ok else f"cannot write {out}")
    return 0 if ok else 1


def wait(app: QApplication, done, timeout_ms: int = 30000) -> None:
    from PySide6.QtCore import QElapsedTimer, QThread

    timer = QElapsedTimer()
    timer.start()
    while not done() and timer.elapsed() < timeout_ms:
        app.processEvents()
        QThread.msleep(20)


if __name__ == "__main__":
    sys.exit(
        main(
            Path(sys.argv[1] if len(sys.argv) > 1 else "projects/demo"),
            Path(sys.argv[2] if len(sys.argv) > 2 else "docs/labelling.png"),
        )
    )
