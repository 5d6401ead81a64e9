"""Writes docs/classifiers.png and docs/classifier_results.png, the README's pictures of the leak
classifier: a synthetic leak survey (`engine.data.leak_toy`) imported with its labels, the binary leak
classifier trained from the window's Train menu call, an unlabelled leak file with its leak-probability lane
and the proposals from it, and the Classifier results dialog.

    QT_QPA_PLATFORM=offscreen python docs/make_classifier_screenshots.py [docs]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from engine.data.importers import import_source
from engine.data.leak_toy import generate_leaks
from engine.labels.exchange import import_labels
from engine.store import Project, labels


def main(out: Path) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.main_window import MainWindow
    from docs.make_labelling_screenshot import wait

    with tempfile.TemporaryDirectory() as temp:
        source = generate_leaks(Path(temp) / "pipes", files_per_class=12, duration_s=10.0, seed=3)
        with Project.create(Path(temp) / "survey") as project:
            import_source(project, source)
            labelled = [
                p for p in (source / "labels.csv").read_text().splitlines()[1:] if not p.startswith("leak_011")
            ]  # one leak file stays unlabelled
            (Path(temp) / "labels.csv").write_text("clip_id,file,start_s,end_s,label\n" + "\n".join(labelled))
            import_labels(project, [Path(temp) / "labels.csv"])
        window = MainWindow(use_audio=False)
        window.resize(1800, 1000)
        window.show()
        window.open_project(Path(temp) / "survey")
        wait(app, lambda: not window.engine.worker.busy())
        window.train_leak(["binary"], {"epochs": "40"})
        wait(app, lambda: not window.engine.worker.busy(), 600000)
        window.table.select("leak_011")
        wait(
            app,
            lambda: (
                window.view.display is not None
                and window.view.display.clip_id == "leak_011"
                and "leak_binary" in window.view.display.lanes
            ),
        )
        wait(app, lambda: False, 500)
        window.proposal_panel.detector.setCurrentText("leak_binary")
        window.propose_clip()
        pending = labels.regions(window.project, "leak_011", ("proposal",))
        if pending:
            window.editor.select(pending[0].region_id)
        window.docks["jobs"].hide()
        wait(app, lambda: False, 600)
        out.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(out / "classifiers.png"))
        dialog = window.classifier_results_dialog()
        wait(app, lambda: False, 600)
        ok = dialog.grab().save(str(out / "classifier_results.png")) and ok
        dialog.close()
        window.shutdown()
        print(f"wrote {out / 'classifiers.png'} and {out / 'classifier_results.png'}" if ok else "cannot write")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
