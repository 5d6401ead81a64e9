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
4. A large project (`--large 100000` clips, four machines x three sections, three detectors' scores for every
   clip; no audio is needed to open one), in a fresh process: time from File > Open to the tree and table
   shown, resident memory after it, and how long sorting by each column and filtering (typing in the filter
   box, choosing a tree node, `show_only`) take to answer, drawn. Baseline in the same run: the same window
   opening the same kind of project of 1 000 clips, and the process's memory before either is opened.
    python tests/bench/bench_gui.py --large-only [--large 100000]
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


def large_project(folder: Path, clips: int) -> Path:
    """A project of `clips` made-up clips (their files need not exist to open it) with three detectors'
    scores for each, written straight to the store as an import and a scoring run would leave them."""
    from engine.audio.io import QA
    from engine.data.clip import Clip
    from engine.store import Project, results

    rng = np.random.default_rng(0)
    machines, sections = ("fan", "pump", "valve", "slider"), ("00", "01", "02")
    made = []
    for i in range(clips):
        machine, section = machines[i % 4], sections[(i // 4) % 3]
        split = "test" if i % 5 == 0 else "train"
        made.append(
            Clip(
                f"{machine}/section_{section}/clip_{i:06d}",
                f"/data/{machine}/section_{section}/{split}/clip_{i:06d}.wav",
                16000,
                10.0 + (i % 7) / 10,
                machine,
                section,
                "target" if i % 3 == 0 else "source",
                split,
                "anomaly" if split == "test" and i % 2 else "normal",
                qa=QA(-20.0 - i % 50, 0.5, 0.0, 0.99 if i % 97 == 0 else 0.01),
                checksum=f"{i:032x}",
                format="WAV",
            )
        )
    with Project.create(folder) as project:
        project.add_clips(made, "dcase")
        for detector in ("dcase_ae", "knn", "patch_memory"):
            for machine in machines:
                for section in sections:
                    model_id, _ = results.add_model(project, detector, f"{machine}/section_{section}", {}, 1.0)
                    group = [c.clip_id for c in made if c.machine_type == machine and c.section_id == section]
                    scores = rng.gamma(2.0, 0.5, len(group))
                    results.write_scores(
                        project,
                        model_id,
                        [(c, s, s > 1.5, None, (s - 1.0) / 0.7) for c, s in zip(group, scores.tolist(), strict=True)],
                    )
    return folder


def large(clips: int) -> None:
    """Run in a fresh process so that its memory is its own."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.engine_thread import preload_engine
    from app.main_window import MainWindow

    preload_engine()
    root = Path(tempfile.mkdtemp(prefix="earmark-large-"))
    os.environ["EARMARK_CONFIG_DIR"] = str(root / "config")
    start = time.perf_counter()
    small, big = large_project(root / "small", 1000), large_project(root / "big", clips)
    print(
        f"large project: {clips} clips, {(big / 'project.sqlite').stat().st_size / 1e6:.0f} MB of SQLite, "
        f"made in {time.perf_counter() - start:.0f} s"
    )
    app = QApplication.instance() or QApplication([])
    window = MainWindow(use_audio=False)
    window.show()
    wait_for(app, lambda: not window.engine.worker.busy())
    table = window.table

    def settled() -> None:  # what the user sees: the event queue drained and the table drawn
        wait_for(app, lambda: not window.engine.worker.busy())
        app.processEvents()
        table.view.viewport().repaint()

    def timed(action) -> float:
        start = time.perf_counter()
        action()
        settled()
        return time.perf_counter() - start

    before = rss_mb()
    opened = {}
    for name, folder in (("1 000", small), (f"{clips:,}".replace(",", " "), big)):
        opened[name] = timed(lambda folder=folder: window.open_project(folder))
        assert table.proxy.rowCount() == window.project.count_clips()
    after = rss_mb()
    small_s, big_s = opened.values()
    print(
        f"  open ({clips} clips) -> tree and table shown: {big_s:.2f} s; baseline, 1 000 clips: {small_s:.2f} s "
        f"(ratio {big_s / small_s:.1f} for {clips / 1000:.0f}x the clips)"
    )
    print(
        f"  memory: {before:.0f} MB with the window open before either project, {after:.0f} MB after "
        f"({after - before:.0f} MB more); process peak {peak_mb():.0f} MB"
    )
    first = timed(lambda: table.filter_box.setText("pump"))
    timed(lambda: table.filter_box.setText(""))
    wait_for(app, lambda: table._warming is None)  # the idle warm-up after opening
    sorts = [
        timed(lambda c=column, o=order: table.view.sortByColumn(c, o))
        for column in range(table.model.columnCount())
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder)
    ]
    print(
        f"  sort by any of {table.model.columnCount()} columns, either way: median "
        f"{1000 * statistics.median(sorts):.0f} ms, slowest {1000 * max(sorts):.0f} ms"
    )
    typed = [timed(lambda t=text: table.filter_box.setText(t)) for text in ("p", "pu", "pum", "pump", "pump 0")]
    typed += [timed(lambda t=text: table.filter_box.setText(t)) for text in ("0.7", "anomaly", "clip_01234", "")]
    print(
        f"  filter box, a keystroke: median {1000 * statistics.median(typed):.0f} ms, slowest "
        f"{1000 * max(typed):.0f} ms over {len(typed)}; the first one right after opening "
        f"{1000 * first:.0f} ms"
    )
    tree = [
        timed(lambda w=where: window.tree.choose(w))
        for where in ({"machine_type": "fan"}, {"machine_type": "pump", "section_id": "01"}, {})
    ]
    only = [
        timed(lambda: table.show_only([table.model.columns.records[i][0] for i in range(0, clips, 97)])),
        timed(lambda: table.show_only(None)),
    ]
    print(
        f"  data-set tree node: slowest {1000 * max(tree):.0f} ms; show_only of {len(range(0, clips, 97))} "
        f"clips and back: slowest {1000 * max(only):.0f} ms"
    )
    selected = timed(table.view.selectAll)
    resorted = timed(lambda: table.view.sortByColumn(table.model.columnCount() - 2, Qt.SortOrder.DescendingOrder))
    print(
        f"  select all {clips} rows: {1000 * selected:.0f} ms; sort with them all selected: "
        f"{1000 * resorted:.0f} ms ({len(table.selected_clip_ids())} still selected)"
    )
    window.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=12)
    parser.add_argument("--hour-minutes", type=float, default=60.0)
    parser.add_argument("--large", type=int, default=100000, help="clips in the large project")
    parser.add_argument("--hour-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--large-only", action="store_true", help="only the large project, in this process")
    args = parser.parse_args()
    if args.hour_only:
        hour_file(args.hour_minutes)
        return
    if args.large_only:
        large(args.large)
        return
    print(f"cores: {os.cpu_count()}, torch threads: {__import__('torch').get_num_threads()}")
    subprocess.run([sys.executable, __file__, "--large-only", "--large", str(args.large)], check=True)
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
