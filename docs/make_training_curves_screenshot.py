"""Writes docs/training_curves.png, the README's picture of Train > Training curves... on a laptop-sized
screen: a small synthetic project where dcase_ae and ast_ae are fitted and `earmark debug freeze` has run
ast_ae with its encoder frozen, the window opened on it and the dialog on the debug run (the frozen encoder's
gradient norm flat at zero, the decoder's moving). The whole 1366 x 768 screen is captured.

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/make_training_curves_screenshot.py [docs/training_curves.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUP = "fan/section_00"
DETECTORS = ("dcase_ae", "ast_ae")


def earmark(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "app.main", *map(str, args)], check=True, cwd=ROOT)


def build(folder: Path) -> Path:
    earmark(
        "toy",
        folder / "toy",
        "--scale",
        "0.02",
        "--seed",
        "3",
        "--duration",
        "2",
        "--sections",
        "1",
        "--machines",
        "fan",
    )
    earmark("new", folder / "plant")
    earmark("import", folder / "plant", folder / "toy")
    for detector in DETECTORS:
        earmark("fit", folder / "plant", "--detector", detector, "--set", "epochs=20", "--device", "cpu")
    earmark(
        "debug",
        "freeze",
        folder / "plant",
        "--detector",
        "ast_ae",
        "--branch",
        "encoder",
        "--epochs",
        "20",
        "--group",
        GROUP,
        "--device",
        "cpu",
    )
    return folder / "plant"


def main(out: Path) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.main_window import MainWindow
    from docs.make_labelling_screenshot import wait

    with tempfile.TemporaryDirectory() as temp:
        project = build(Path(temp))
        window = MainWindow(use_audio=False)
        window.show()
        window.open_project(project)
        wait(app, lambda: not window.engine.worker.busy())
        dialog = window.training_curves_dialog()
        names = [run.name for run in dialog.runs]
        dialog.runs_list.setCurrentRow(next(i for i, name in enumerate(names) if "debug run" in name))
        wait(app, lambda: False, 800)
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = app.primaryScreen().grabWindow(0).save(str(out))
        dialog.close()
        window.shutdown()
    print(f"wrote {out}" if ok else f"cannot write {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "training_curves.png")))
