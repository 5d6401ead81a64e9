"""Writes docs/large_project_1366x768.png, the README's picture of a large project: 100 000 clips (made by the
GUI benchmark's `large_project`: four machines, three sections, three detectors' scores) open in the window on
an X server with one 1366 x 768 screen (Xvfb), the table sorted by knn, highest first, and showing only the
clips another view chose (`ClipTable.show_only`, as the evaluation dock's histogram bars do), with the line
that says so.

    python docs/make_large_project_screenshot.py [CLIPS] [docs/large_project_1366x768.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(project: Path) -> int:
    """In the X server: open the project as a user does, sort, show some clips only, say READY."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.views.clip_table import FIXED
    from docs.make_labelling_screenshot import wait

    app = QApplication(sys.argv[:1])
    window = MainWindow(use_audio=False)
    window.show()
    wait(app, lambda: not window.engine.worker.busy())
    window.open_project(project)
    wait(app, lambda: not window.engine.worker.busy())
    window.docks["jobs"].hide()
    table = window.table
    window.tree.choose({"machine_type": "pump"})
    table.view.sortByColumn(len(FIXED) + table.model.detectors.index("knn"), Qt.SortOrder.DescendingOrder)
    splitter = window.centralWidget()  # more of the table than the default layout gives it
    total = sum(splitter.sizes())
    splitter.setSizes([total * 9 // 20, total - total * 9 // 20])
    columns = table.model.columns
    knn = columns.scores["knn"].score
    chosen = [columns.records[i][0] for i in range(len(columns)) if 1.50 <= knn[i] < 1.55]
    table.show_only(chosen, "knn scores 1.50-1.55")
    window._status(f"{project.name}: {len(columns)} clips")
    wait(app, lambda: False, 1500)
    print("READY", flush=True)
    return app.exec()


def main(clips: int, out: Path) -> int:
    from tests.app.xserver import x_environment, xvfb
    from tests.bench.bench_gui import large_project

    with tempfile.TemporaryDirectory() as temp:
        project = large_project(Path(temp) / f"plant_{clips}", clips)
        with xvfb(1366, 768) as display:
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", str(project)],
                env=x_environment(display, Path(temp) / "config"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output = []
            for line in process.stdout:
                output.append(line)
                if line.startswith("READY"):
                    break
            else:
                raise SystemExit("the window did not open:\n" + "".join(output)[-3000:])
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["import", "-display", display, "-window", "root", str(out)], check=True)
            process.terminate()  # (nothing to save: the project was made for the picture)
            process.wait(timeout=60)
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(Path(sys.argv[2])))
    sys.exit(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 100000,
            Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "large_project_1366x768.png",
        )
    )
