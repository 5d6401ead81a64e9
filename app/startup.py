"""Opening the window on the demo project: build it on the engine thread when it is missing (progress in
the jobs dock), open it, show an anomalous test clip with its map, and, for `--screenshot`, render the
window to a PNG and quit."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app import jobs
from app.engine_thread import JobHandle
from engine.demo import missing
from engine.store import results


def open_demo(window, options, outcome: dict) -> None:
    from engine.cli_demo import demo_folder, demo_plan

    folder, plan = demo_folder(options), demo_plan(options)
    if options.device:  # checked by the console script before the window opened
        window.engine.worker.device_choice = options.device

    def opened(_=None) -> None:
        if not window.open_project(folder):
            outcome["status"] = 1
            QApplication.quit()
            return
        clip_id = showcase_clip(window)
        if options.screenshot is not None:
            take_screenshot(window, clip_id, Path(options.screenshot), outcome)

    todo = missing(folder, plan)
    if not todo:
        opened()
        return
    window.statusBar().showMessage(f"Building the demo project in {folder} (see the Jobs dock) ...")
    # The window opens on the project as soon as its first detector is there; the slower ones go on in the
    # jobs dock and their columns fill in as they finish (a screenshot waits for all of them).

    def watch(handle: JobHandle) -> None:
        handle.ended.connect(lambda status: _demo_failed(status, options, outcome))

    def build_the_rest(rest: list[str]) -> None:
        if rest:
            watch(
                window.submit(
                    "demo",
                    f"fit the demo's {', '.join(rest)}",
                    jobs.build_demo(folder, plan, rest),
                    lambda _=None: window.refresh(),
                )
            )

    if options.screenshot is not None:
        watch(window.submit("demo", "build the demo project", jobs.build_demo(folder, plan), opened))
    elif len(todo) == len(plan.detectors):
        watch(
            window.submit(
                "demo",
                f"build the demo project ({todo[0]})",
                jobs.build_demo(folder, plan, todo[:1]),
                lambda _=None: (opened(), build_the_rest(todo[1:])),
            )
        )
    else:
        opened()
        build_the_rest(todo)


def _demo_failed(status: str, options, outcome: dict) -> None:
    if status != "done" and options.screenshot is not None:
        print("earmark: the demo project could not be built; see the messages above", file=sys.stderr)
        outcome["status"] = 1
        QApplication.quit()


def showcase_clip(window) -> str | None:
    """The clip that shows the most: an anomalous test clip with a truth region, flagged by the map's
    detector, with the highest score; it is selected in the table."""
    project = window.project
    detector = window.controls.first.currentText()
    if not detector:
        return None
    truth = {c.clip_id for c in project.clips(split="test", label="anomaly") if c.anomaly_regions}
    rows = [r for r in results.latest_scores(project, detector, split="test") if r.clip_id in truth]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r.decision, r.score))
    window.table.select(best.clip_id)
    return best.clip_id


def take_screenshot(window, clip_id: str | None, path: Path, outcome: dict) -> None:
    def grab() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(path)):
            print(f"earmark: cannot write {path}", file=sys.stderr)
            outcome["status"] = 1
        else:
            print(f"Saved a screenshot of the window to {path}")
        window.shutdown()
        QApplication.quit()

    def when_drawn(shown: str) -> None:
        if clip_id is None or shown == clip_id:
            QTimer.singleShot(300, grab)  # let the layout and the detail pass settle

    if clip_id is None or (window.view.overview is not None and window.view.display.clip_id == clip_id):
        QTimer.singleShot(300, grab)
    else:
        window.clip_shown.connect(when_drawn)
