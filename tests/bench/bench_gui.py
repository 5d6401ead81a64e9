"""Benchmark: how the window feels. Offscreen, on this machine's CPU.

    python tests/bench/bench_gui.py [--drops 12] [--hour-minutes 60]

1. Drop to score shown: a 10 s recording dropped on the window, imported into the inbox, scored by the
   warm `knn` of the chosen group, its row in the table and its lanes drawn; median and slowest of
   `--drops` drops after one warm-up. Baseline in the same run: the bare engine calls (import + score)
   for the same kind of file, without the window.
2. Event-loop stalls while a fit runs: the longest gap between ticks of a 5 ms timer on the GUI thread
   while the engine thread fits and scores `knn` and `dcase_ae`; baseline: the same timer with the engine idle.
3. A one-hour 16 kHz recording, in a fresh process: time from selecting it to its overview drawn, time to
   full-resolution detail after zooming to 10 s, and the process's peak memory (with the window, torch and
   Qt loaded; the same process before the file is opened is the baseline).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recording(path: Path, seconds: float, seed: int, rate: int = 16000) -> Path:
    """A machine-like recording, written a minute at a time (an hour never sits in memory)."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as out:
        done = 0
        while done < seconds * rate:
            n = int(min(60 * rate, seconds * rate - done))
            t = (done + np.arange(n)) / rate
            block = 0.1 * np.sin(2 * np.pi * (100 + 20 * seed) * t) + 0.03 * rng.standard_normal(n)
            out.write(block.astype(np.float32))
            done += n
    return path


def wait_for(app, condition, timeout_s: float = 60.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.001)


def make_project(root: Path):
    from engine.data.importers import import_source
    from engine.data.toy import ToyConfig, generate
    from engine.detectors import runs
    from engine.store import Project

    data = root / "data"
    generate(data, ToyConfig(scale=0.05, seed=0, sections=1, machines=("fan",)))
    project = Project.create(root / "project")
    import_source(project, data, "metadata")
    runs.fit(runs.Session(project), "knn", group="fan/section_00")
    project.close()
    return root / "project"


def drops(app, window, root: Path, count: int) -> None:
    from engine.data.importers import import_files
    from engine.detectors import runs
    from engine.store import Project

    window.drop_group.setCurrentText("fan/section_00")
    files = [recording(root / f"drop_{i:02d}.wav", 10.0, seed=i + 1) for i in range(count + 1)]
    times, drawn = [], []
    for index, path in enumerate(files):
        got = []
        window.drop_scored.connect(got.append)
        shown = []
        window.clip_shown.connect(shown.append)
        start = time.perf_counter()
        window.score_files([str(path)])
        wait_for(app, lambda: got)  # noqa: B023 (called before the loop moves on)
        scored = time.perf_counter() - start
        clip_id = got[0].clip_ids[0]
        row = window.table.model.rows[window.table.model.row_of(clip_id)]
        assert "knn" in row.scores and window.view.display.clip_id == clip_id
        wait_for(app, lambda: clip_id in shown)  # noqa: B023 (called before the loop moves on)
        window.drop_scored.disconnect(got.append)
        window.clip_shown.disconnect(shown.append)
        if index:  # the first drop loads the model: warm-up
            times.append(scored)
            drawn.append(time.perf_counter() - start)
    # Baseline: the same engine calls without the window, on a warm session.
    bare = []
    with Project.open(window.project.folder) as project:
        session = runs.Session(project)
        for i in range(count + 1):
            path = recording(root / f"bare_{i:02d}.wav", 10.0, seed=100 + i)
            start = time.perf_counter()
            report = import_files(project, [path], source="inbox")
            runs.score_with_group(session, "fan/section_00", [project.clip(report.clip_ids[0])])
            if i:
                bare.append(time.perf_counter() - start)
    median, bare_median = statistics.median(times), statistics.median(bare)
    print(
        f"drop -> score shown (10 s clip, warm knn): median {1000 * median:.0f} ms, slowest "
        f"{1000 * max(times):.0f} ms over {len(times)} drops"
    )
    print(f"  spectrogram of the dropped clip drawn too: median {1000 * statistics.median(drawn):.0f} ms")
    print(
        f"  baseline, engine alone (import + score): median {1000 * bare_median:.0f} ms; "
        f"window / engine {median / bare_median:.2f}"
    )


def stalls(app, window) -> None:
    from PySide6.QtCore import QTimer

    from app import jobs

    def longest_gap(while_running) -> tuple[float, int]:
        ticks: list[float] = []
        timer = QTimer(interval=5)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        while_running()
        timer.stop()
        gaps = np.diff(ticks) if len(ticks) > 1 else np.zeros(1)
        return float(gaps.max()), len(ticks)

    def idle() -> None:
        end = time.perf_counter() + 5.0
        wait_for(app, lambda: time.perf_counter() > end)

    def fitting() -> None:
        ended = []
        window.job_ended.connect(lambda job_id, status: ended.append(status))
        window.submit("fit", "fit knn", jobs.fit_detectors(["knn"]), window._fitted)
        window.submit("fit", "fit dcase_ae", jobs.fit_detectors(["dcase_ae"], settings={"epochs": 20}), window._fitted)
        wait_for(app, lambda: len(ended) >= 2, timeout_s=900)
        assert ended == ["done", "done"], ended

    idle_gap, _ = longest_gap(idle)
    start = time.perf_counter()
    busy_gap, ticks = longest_gap(fitting)
    seconds = time.perf_counter() - start
    print(
        f"longest event-loop stall while fitting knn + dcase_ae ({seconds:.0f} s, {ticks} ticks): "
        f"{1000 * busy_gap:.0f} ms; idle baseline {1000 * idle_gap:.0f} ms"
    )


def hour_file(minutes: float) -> None:
    """Run in a fresh process so that its peak memory is its own."""
    from PySide6.QtWidgets import QApplication

    from app.engine_thread import preload_engine
    from app.main_window import MainWindow
    from engine.data.importers import import_files
    from engine.store import Project

    preload_engine()
    root = Path(tempfile.mkdtemp(prefix="earmark-hour-"))
    os.environ["EARMARK_CONFIG_DIR"] = str(root / "config")
    path = recording(root / "hour.wav", minutes * 60, seed=7)
    with Project.create(root / "project") as project:
        start = time.perf_counter()
        clip_id = import_files(project, [path]).clip_ids[0]
        imported = time.perf_counter() - start
    app = QApplication.instance() or QApplication([])
    window = MainWindow(use_audio=False)
    window.show()
    window.open_project(root / "project")
    wait_for(app, lambda: not window.engine.worker.busy())
    before = rss_mb()
    shown = []
    window.clip_shown.connect(shown.append)
    start = time.perf_counter()
    window.table.select(clip_id)
    wait_for(app, lambda: clip_id in shown)  # noqa: B023 (called before the loop moves on)
    opened = time.perf_counter() - start
    details = []
    window.view.detail_shown.connect(lambda a, b: details.append(time.perf_counter()))
    start = time.perf_counter()
    window.view.set_visible_range(1800.0, 1810.0)
    wait_for(app, lambda: details)
    detail = details[0] - start
    print(
        f"one-hour file ({minutes:.0f} min at 16 kHz, {path.stat().st_size / 1e6:.0f} MB): import {imported:.2f} s; "
        f"select -> overview drawn {opened:.2f} s; zoom to 10 s -> detail drawn {1000 * detail:.0f} ms (incl. "
        f"the 120 ms debounce)"
    )
    print(
        f"  memory: {before:.0f} MB with the window open before the file, {rss_mb():.0f} MB after; "
        f"process peak {peak_mb():.0f} MB"
    )
    window.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=12)
    parser.add_argument("--hour-minutes", type=float, default=60.0)
    parser.add_argument("--hour-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hour_only:
        hour_file(args.hour_minutes)
        return
    print(f"cores: {os.cpu_count()}, torch threads: {__import__('torch').get_num_threads()}")
    subprocess.run([sys.executable, __file__, "--hour-only", "--hour-minutes", str(args.hour_minutes)], check=True)

    from PySide6.QtWidgets import QApplication

    from app.engine_thread import preload_engine
    from app.main_window import MainWindow

    preload_engine()  # as the console script does before the window appears
    root = Path(tempfile.mkdtemp(prefix="earmark-gui-bench-"))
    os.environ["EARMARK_CONFIG_DIR"] = str(root / "config")
    folder = make_project(root)
    app = QApplication.instance() or QApplication([])
    window = MainWindow(use_audio=False)
    window.show()
    window.open_project(folder)
    wait_for(app, lambda: not window.engine.worker.busy())
    drops(app, window, root, args.drops)
    stalls(app, window)
    window.shutdown()


if __name__ == "__main__":
    main()
