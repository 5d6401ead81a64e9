"""Benchmark: proposals from each detector's frame scores, judged event by event, and what they cost.

    python tests/bench/bench_proposals.py [--project projects/demo] [--sweep] [--on-ratio 1.0 ...]

On a copy of the project (its database and stored lanes; audio and feature caches stay where they are,
and the original is never opened), for every detector with stored test scores:
1. Quality: proposals (`settings_for` + `propose`, the defaults unless given) on every anomalous test
   clip with truth regions and on every normal test clip (each proposal on a normal clip is a false
   positive); event-level precision, recall and F1 pooled over those clips, at IoU >= 0.3 and at any
   overlap; false positives on normal clips shown apart.
2. Cost: `propose` per clip against loading that clip's lane from disk (`results.load_lanes`), measured in
   the same run, plus `propose` on a 100k-frame lane and `propose_all` writing one detector's proposals.
3. With `--sweep`: F1 at both criteria over a grid of off ratio, shortest region and merge gap (on = the
   model's frame threshold), the grid the defaults were chosen from.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.evaluation.events import event_f1  # noqa: E402
from engine.labels import proposals  # noqa: E402
from engine.store import Project, results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def copy_project(source: Path, target: Path) -> Path:
    """The database and stored lanes and models; audio, feature caches and run files are left out (clips
    refer to their audio by absolute path, proposals need none of them)."""
    for name in ("project.sqlite", "project.sqlite-wal"):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    shutil.copytree(source / "artifacts", target / "artifacts", ignore=shutil.ignore_patterns("features", "runs"))
    return target


def load(project: Project) -> dict[str, list[tuple]]:
    """detector -> [(frame_times, frame_scores, frame_threshold, truth spans, duration, seconds to load)]
    for anomalous test clips with truth regions and normal test clips."""
    clips = {
        c.clip_id: c
        for c in project.clips(split="test")
        if c.label == "normal" or (c.label == "anomaly" and c.anomaly_regions)
    }
    found: dict[str, list[tuple]] = {}
    for detector in results.fitted_detectors(project):
        records = {m.model_id: m for m in results.models(project, detector)}
        for row in results.latest_scores(project, detector, split="test"):
            clip = clips.get(row.clip_id)
            if clip is None or not row.map_artifact:
                continue
            start = time.perf_counter()
            lanes = results.load_lanes(project, row.map_artifact)
            seconds = time.perf_counter() - start
            found.setdefault(detector, []).append(
                (
                    lanes.frame_times,
                    lanes.frame_scores,
                    results.frame_threshold(project, records[row.model_id]),
                    list(clip.anomaly_regions),
                    clip.duration_s,
                    seconds,
                )
            )
    return found


def judge(items: list[tuple], **ratios: float) -> tuple:
    pairs, normal_fp = [], 0
    for times, scores, threshold, truth, duration, _ in items:
        found = proposals.lane_proposals("", duration, times, scores, threshold, None, "anomaly", **ratios)
        spans = [(r.start_s, r.end_s) for r in found]  # the rule the window and propose_all use
        pairs.append((spans, truth))
        normal_fp += 0 if truth else len(spans)
    return event_f1(pairs, 0.3), event_f1(pairs, 0.0), normal_fp


def quality(data: dict[str, list[tuple]], ratios: dict[str, float]) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in ratios.items())
    print(f"\nEvent-level scores ({shown}); counts pooled over clips:")
    print(
        f"  {'detector':<14}{'clips':>6}{'P@.3':>7}{'R@.3':>7}{'F1@.3':>7}{'tp':>5}{'fp':>5}{'fn':>5}"
        f"{'  fp on normals':>16}{'P any':>7}{'R any':>7}{'F1 any':>7}"
    )
    for detector, items in sorted(data.items()):
        strict, loose, normal_fp = judge(items, **ratios)
        print(
            f"  {detector:<14}{len(items):>6}{strict.precision:>7.3f}{strict.recall:>7.3f}{strict.f1:>7.3f}"
            f"{strict.tp:>5}{strict.fp:>5}{strict.fn:>5}{normal_fp:>16}{loose.precision:>7.3f}"
            f"{loose.recall:>7.3f}{loose.f1:>7.3f}"
        )


def cost(data: dict[str, list[tuple]], ratios: dict[str, float]) -> None:
    print("\nCost per clip (median over clips, same run):")
    for detector, items in sorted(data.items()):
        loading = statistics.median(item[5] for item in items)
        timings = []
        for times, scores, threshold, *_ in items:
            start = time.perf_counter()
            proposals.propose(times, scores, proposals.settings_for(threshold, scores, **ratios))
            timings.append(time.perf_counter() - start)
        proposing = statistics.median(timings)
        print(
            f"  {detector:<14} {len(items[0][0]):>6} frames: settings_for + propose {proposing * 1e6:7.0f} us, "
            f"loading the lane {loading * 1e6:7.0f} us, ratio {proposing / loading:.2f}"
        )
    rng = np.random.default_rng(0)
    times = np.arange(100_000) * 0.032
    scores = np.convolve(rng.gamma(2.0, 1.0, times.size), np.ones(9) / 9, mode="same")
    for level in (2.5, 3.0, 4.0):
        settings = proposals.ProposalSettings(
            level, 0.8 * level, ratios.get("min_duration_s", 0.2), ratios.get("merge_gap_s", 1.0)
        )
        found = proposals.propose(times, scores, settings)
        runs = []
        for _ in range(20):
            start = time.perf_counter()
            proposals.propose(times, scores, settings)
            runs.append(time.perf_counter() - start)
        print(
            f"  100k-frame lane, on {level} ({len(found)} regions): propose {statistics.median(runs) * 1e3:.2f} ms "
            f"(max {max(runs) * 1e3:.2f} ms)"
        )


def writing(project: Project, detector: str, ratios: dict[str, float]) -> None:
    start = time.perf_counter()
    written = proposals.propose_all(project, detector, **ratios)
    seconds = time.perf_counter() - start
    scored = len(results.latest_scores(project, detector))
    print(
        f"\npropose_all({detector}) on the copy: {written} proposals on {scored} clips in {seconds:.2f} s "
        f"({seconds / max(scored, 1) * 1e3:.1f} ms per clip, reading lanes and writing one transaction each)"
    )


def sweep(data: dict[str, list[tuple]], on_ratio: float) -> None:
    offs, shortest = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5), (0.0, 0.1, 0.2, 0.35, 0.5)
    gaps = (0.0, 0.2, 0.5, 0.7, 1.0, 1.5, 2.0)
    print(f"\nSweep (on ratio {on_ratio}): F1 at IoU >= 0.3 / any overlap; rows off ratio, columns merge gap (s)")
    for detector, items in sorted(data.items()):
        for minimum in shortest:
            print(f"  {detector}, shortest region {minimum} s" + "".join(f"{g:>14}" for g in gaps))
            for off in offs:
                cells = []
                for gap in gaps:
                    strict, loose, _ = judge(
                        items, on_ratio=on_ratio, off_ratio=off, min_duration_s=minimum, merge_gap_s=gap
                    )
                    cells.append(f"{strict.f1:.3f}/{loose.f1:.3f}")
                print(f"    off {off:<4}" + " " * (len(detector) + 21) + "".join(f"{c:>14}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT / "projects" / "demo")
    parser.add_argument("--on-ratio", type=float, default=1.0)
    parser.add_argument("--off-ratio", type=float, default=proposals.DEFAULT_OFF_RATIO)
    parser.add_argument("--min-duration", type=float, default=proposals.DEFAULT_MIN_DURATION_S)
    parser.add_argument("--merge-gap", type=float, default=proposals.DEFAULT_MERGE_GAP_S)
    parser.add_argument("--sweep", action="store_true", help="print the grid the defaults were chosen from")
    args = parser.parse_args()
    ratios = {
        "on_ratio": args.on_ratio,
        "off_ratio": args.off_ratio,
        "min_duration_s": args.min_duration,
        "merge_gap_s": args.merge_gap,
    }
    with (
        tempfile.TemporaryDirectory() as temporary,
        Project.open(copy_project(args.project, Path(temporary))) as project,
    ):
        data = load(project)
        if not data:
            sys.exit(f"{args.project} has no stored test scores; fit and score detectors first")
        anomalous = sum(bool(item[3]) for item in next(iter(data.values())))
        print(
            f"{args.project}: {anomalous} anomalous test clips with truth regions, "
            f"{len(next(iter(data.values()))) - anomalous} normal test clips"
        )
        quality(data, ratios)
        cost(data, ratios)
        writing(project, max(data, key=lambda d: judge(data[d], **ratios)[0].f1), ratios)
        if args.sweep:
            sweep(data, args.on_ratio)


if __name__ == "__main__":
    main()
