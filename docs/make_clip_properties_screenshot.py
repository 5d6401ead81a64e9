"""Writes docs/clip_properties.png, the README's picture of organising plain recordings: a folder of WAVs with no
metadata imported, the training clips marked with Use as normal training clips, the test clips given their
labels in the Clip properties dock, knn fitted, then one training clip moved to the test set, so the tree and
the knn column say "stale: refit".

    QT_QPA_PLATFORM=offscreen python docs/make_clip_properties_screenshot.py [docs/clip_properties.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from engine.data.importers import import_source
from engine.store import Project
from tests.helpers import write_hum


def main(out: Path) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app import jobs
    from app.main_window import MainWindow
    from docs.make_labelling_screenshot import save_window, wait

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "recordings"
        for i in range(8):
            write_hum(root / "monday" / f"mon_{i}.wav", seconds=4.0, seed=i)
        for i in range(5):
            write_hum(root / "tuesday" / f"hum_{i}.wav", seconds=4.0, seed=100 + i)
            write_hum(root / "tuesday" / f"knock_{i}.wav", seconds=4.0, seed=200 + i, burst=True)
        with Project.create(Path(temp) / "pump") as project:
            import_source(project, root)
        window = MainWindow(use_audio=False)
        window.resize(1600, 1000)
        window.show()
        window.open_project(Path(temp) / "pump")
        wait(app, lambda: not window.engine.worker.busy(), 60000)
        properties, table = window.clip_properties, window.table
        every = [row.clip.clip_id for row in table.model.rows]
        properties.apply({"machine": "pump", "section": "00", "domain": "source"}, every)
        properties.apply({"split": "train", "label": "normal"}, [c for c in every if c.startswith("monday/")])
        properties.apply({"split": "test", "label": "normal"}, [c for c in every if c.startswith("tuesday/hum")])
        properties.apply({"split": "test", "label": "anomaly"}, [c for c in every if c.startswith("tuesday/kn")])
        window.submit("fit", "fit knn", jobs.fit_detectors(["knn"]), window._fitted)
        wait(app, lambda: not window.engine.worker.busy(), 60000)
        wait(app, lambda: False, 300)
        properties.apply({"split": "test"}, ["monday/mon_7"])
        window.tree.expandAll()
        table.select("tuesday/knock_2", reveal=False)
        wait(app, lambda: window.view.overview is not None and window.view.display.clip_id == "tuesday/knock_2")
        table.select_clips([c for c in every if c.startswith("tuesday/kn")])
        return save_window(app, window, out)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/clip_properties.png")))
