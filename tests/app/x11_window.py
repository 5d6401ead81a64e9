"""The window as a user starts it (`earmark open PROJECT`, through `app.main.main`), run by the X11 tests in a
child process on a real X server. Once the project is open and a clip is shown, it prints one line
`LAYOUT {json}` with what a user on that screen can reach: the screen, the window's frame, each dock's place
(or its tab's, when it is a tab behind another), the spectrogram's size and any key given to two actions.
Then the window runs until the user quits it; the exit status is the console script's. With `--labelling`
(for the README's picture) it first proposes regions on the clip and labels two the way a user does; with
`--side-by-side` it shows patch_memory, dcase_ae and knn side by side, with `--every-detector` every fitted
detector (patch_memory first); with `--evaluation`, the evaluation dock.

    DISPLAY=:N QT_QPA_PLATFORM=xcb python tests/app/x11_window.py PROJECT [--labelling] [--side-by-side]
        [--every-detector]
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QPoint, QRect, QTimer
from PySide6.QtWidgets import QApplication, QTabBar


def _rect(rect: QRect) -> list[int]:
    return [rect.x(), rect.y(), rect.width(), rect.height()]


def _global(widget) -> list[int]:
    return _rect(QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size()))


def report(window) -> dict:
    tabs: dict[str, list[int]] = {}
    for bar in window.findChildren(QTabBar):
        if bar.isVisible():
            for index in range(bar.count()):
                rect = bar.tabRect(index)
                tabs[bar.tabText(index)] = _rect(QRect(bar.mapToGlobal(rect.topLeft()), rect.size()))
    docks = {}
    for name, dock in window.docks.items():
        docks[name] = {
            "title": dock.windowTitle(),
            "visible": dock.isVisible() and not dock.visibleRegion().isEmpty(),
            "floating": dock.isFloating(),
            "rect": _global(dock),
            "tab": tabs.get(dock.windowTitle()),
        }
    keys: dict[str, list[str]] = {}
    for action in window.actions():
        for sequence in action.shortcuts():
            keys.setdefault(sequence.toString(), []).append(action.objectName())
    screen = window.screen().geometry()
    graphics = window.view.graphics
    columns = [
        [*_rect(QRect(graphics.mapToGlobal(rect.topLeft()), rect.size())), panel.plot.titleLabel.text]
        for panel in window.view.shown_panels()
        for rect in [
            graphics.mapFromScene(
                panel.colour_bar.sceneBoundingRect().united(panel.plot.sceneBoundingRect())
            ).boundingRect()
        ]
    ]
    return {
        "screen": _rect(screen),
        "available": _rect(window.screen().availableGeometry()),
        "frame": _rect(window.frameGeometry()),
        "minimum": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
        "docks": docks,
        "spectrogram": _global(window.view),
        "columns": columns,
        "caption": window.caption.text(),
        "twice": {k: v for k, v in keys.items() if len(v) > 1},
    }


def label_some(window) -> None:
    """Proposals from patch_memory on the shown clip, left pending, and a stretch of the second class marked
    with [ and ] where nothing was proposed."""
    panel = window.proposal_panel
    panel.detector.setCurrentText("patch_memory")
    for box, value in ((panel.on, 0.7), (panel.off, 0.6), (panel.min_duration, 0.05), (panel.merge_gap, 0.05)):
        box.set_value(value)
    window.propose_clip()
    duration = window.view.display.duration_s
    window.editor.choose_class(1)
    window.editor.mark_start(0.82 * duration)
    window.editor.mark_end(0.95 * duration)
    window.editor.commit_marks()
    window.refresh_regions()


def side_by_side(window, every: bool = False) -> None:
    """Three detectors' maps on the clip (or every fitted detector's), as a user picks them in the strip above
    the spectrogram."""
    controls = window.controls
    controls.choose(["patch_memory", "dcase_ae", "knn", *(controls.detectors if every else [])])
    controls.side_by_side.setChecked(True)


def evaluation(window) -> None:
    """View > Evaluation with fan section 00's source AUC row chosen at its best detector, and the clip table
    filtered to the fullest bar of that detector's histogram, as a user clicks it."""
    import time

    import numpy as np

    window.show_evaluation()
    panel = window.evaluation_panel
    waited = time.monotonic()
    while panel.model.rowCount() == 0 and time.monotonic() - waited < 20:  # the figures are read in the background
        QApplication.processEvents()
        time.sleep(0.02)
    row = next(i for i, r in enumerate(panel.model.rows) if r.field == "auc_source")
    values = [panel.model.value(row, d) for d in panel.model.detectors]
    panel.select(panel.model.rows[row], panel.model.detectors[int(np.nanargmax(values))])
    histogram = panel.histogram.histogram
    if histogram is not None:
        fullest = int(np.argmax(sum(np.asarray(c) for c in histogram.counts_by_kind.values())))
        panel.histogram.click_at(float((histogram.edges[fullest] + histogram.edges[fullest + 1]) / 2))


def main(
    project: str, labelling: bool = False, three_columns: bool = False, every: bool = False, evaluate: bool = False
) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.main import main as earmark

    def watch() -> None:
        from app.main_window import MainWindow
        from app.startup import showcase_clip

        windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
        window = windows[0] if windows else None
        if window is None or window.project is None or window.engine.worker.busy():
            QTimer.singleShot(100, watch)
            return
        if window.view.display is None:
            showcase_clip(window)
            QTimer.singleShot(200, watch)
            return
        if window.view.overview is None:  # the spectrogram is still being computed
            QTimer.singleShot(100, watch)
            return
        if labelling:
            label_some(window)
        if three_columns or every:
            side_by_side(window, every)
        if evaluate:
            evaluation(window)
        window.activateWindow()  # no window manager on Xvfb: the window takes the keyboard itself
        window.raise_()
        QTimer.singleShot(500, lambda: print("LAYOUT " + json.dumps(report(window)), flush=True))

    QTimer.singleShot(100, watch)
    return earmark(["open", project])


if __name__ == "__main__":
    options = sys.argv[2:]
    sys.exit(
        main(
            sys.argv[1],
            "--labelling" in options,
            "--side-by-side" in options,
            "--every-detector" in options,
            "--evaluation" in options,
        )
    )
