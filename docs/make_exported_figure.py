"""Writes docs/exported_figure.png: what File > Export figure... writes for the tests' small demo
project (or PROJECT), the most anomalous test clip with a ground-truth region shown with patch_memory's map,
the window on an X server with one 1366 x 768 screen (Xvfb; the script runs itself again there).

    python docs/make_exported_figure.py [PROJECT] [docs/exported_figure.png]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHILD = "EARMARK_FIGURE_ON_X"


def settle(app, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def main(project: Path | None, out: Path) -> int:
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from docs.make_report_screenshot import build
    from tests.app.test_main_window import anomalous_test_clip

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "demo"
        if project is None:
            build(folder)
        else:
            shutil.copytree(project, folder)
        window = MainWindow(use_audio=False)
        window.resize(1366, 768)
        window.show()
        window.open_project(folder)
        settle(app, 3.0)
        clip_id = anomalous_test_clip(window)
        window.table.select(clip_id)
        settle(app, 5.0)  # the spectrogram is computed off the GUI thread
        out.parent.mkdir(parents=True, exist_ok=True)
        window.export_figure(out, "png")
        window.export_figure(Path(temp) / "figure.svg", "svg")  # the SVG too, checked to be written (not kept)
        written = (Path(temp) / "figure.svg").stat().st_size
        window.shutdown()
    print(f"wrote {out} (and an SVG of {written} bytes)")
    return 0


def on_x(args: list[str]) -> int:
    """This script again, on a fresh Xvfb screen of 1366 x 768."""
    import subprocess

    from tests.app.xserver import x_environment, xvfb

    with xvfb(1366, 768) as display, tempfile.TemporaryDirectory() as config:
        env = {**x_environment(display, Path(config)), CHILD: "1"}
        return subprocess.run([sys.executable, __file__, *args], env=env).returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if not os.environ.get(CHILD):
        sys.exit(on_x(args))
    sys.exit(
        main(Path(args[0]) if args else None, Path(args[1]) if len(args) > 1 else ROOT / "docs" / "exported_figure.png")
    )
