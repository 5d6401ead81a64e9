"""Benchmark: how well a dropped recording with no machine or section finds its group, and how often a drop is
called "unlike every trained group". On the synthetic set, on this machine's CPU.

    python tests/bench/bench_drop_groups.py [--scale 0.02] [--sections 2] [--takes 2]

Fits knn, patch_memory and dcase_ae on every group, then drops `--takes` new recordings of each test kind
(machine x section x domain x normal/anomaly; same machines, new noise and operating point) and some sounds
of no machine. Reports, for the rule the window uses (log-mel distance to the nearest training normal) and
for the detectors' scores relative to their thresholds (the median over the three detectors), how many drops
landed in the right machine and the right group; how many machine recordings and how many other sounds were
called unlike every trained group; and the time `score_drops` took.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from engine.data.importers import import_files, import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate, plan, render  # noqa: E402
from engine.detectors import drops, runs  # noqa: E402
from engine.store import Project, results  # noqa: E402

DETECTORS = (("knn", {}), ("patch_memory", {}), ("dcase_ae", {"epochs": 3}))


def other_sounds(folder: Path, rate: int, seconds: float) -> list[Path]:
    rng = np.random.default_rng(4)
    t = np.arange(int(rate * seconds)) / rate
    sounds = {
        "chirp": 0.8 * np.sin(2 * np.pi * (200 + 1500 * t) * t),
        "loud_hiss": np.clip(0.5 * rng.standard_normal(t.size), -1, 1),
        "hiss": 0.3 * rng.standard_normal(t.size),
        "quiet_hiss": 0.03 * rng.standard_normal(t.size),
        "square": 0.5 * np.sign(np.sin(2 * np.pi * 440 * t)),
        "hum": 0.1 * np.sin(2 * np.pi * 120 * t) + 0.02 * rng.standard_normal(t.size),
        "warble": 0.3
        * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 3 * t)) * t)
        * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)),
    }
    for name, samples in sounds.items():
        sf.write(folder / f"other_{name}.wav", samples.astype(np.float32), rate)
    return [folder / f"other_{name}.wav" for name in sounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--takes", type=int, default=2)
    args = parser.parse_args()
    config = ToyConfig(scale=args.scale, seed=11, duration_s=2.0, sections=args.sections)
    with tempfile.TemporaryDirectory() as temp:
        out = Path(temp)
        generate(out / "audio", config)
        project = Project.create(out / "project")
        import_source(project, out / "audio", "metadata")
        session = runs.Session(project, device=torch.device("cpu"))
        for detector, settings in DETECTORS:
            runs.fit(session, detector, settings)
        (out / "drops").mkdir()
        truth: dict[str, str] = {}
        files = []
        for item in plan(config):
            if item.split == "test" and item.index < args.takes:
                take = 800 + item.index
                samples, _ = render(dataclasses.replace(item, index=take, seed=(*item.seed[:-1], take)), config)
                path = out / "drops" / f"{item.machine}_{item.section:02d}_{item.domain}_{item.label}_{take}.wav"
                sf.write(path, samples, config.sample_rate)
                files.append(path)
                truth[path.stem] = f"{item.machine}/section_{item.section:02d}"
        files += other_sounds(out / "drops", config.sample_rate, config.duration_s)
        report = import_files(project, files, source="inbox")
        clips = [project.clip(clip_id) for clip_id in report.clip_ids]
        started = time.perf_counter()
        verdicts = {v.clip_id: v for v in drops.score_drops(session, clips)}
        took = time.perf_counter() - started
        by_score: dict[str, dict[str, list[float]]] = {c.clip_id: {} for c in clips}
        for detector, _ in DETECTORS:
            for group, record in results.latest_models(project, detector).items():
                for found in session.model(record).score(clips):
                    by_score[found.clip_id].setdefault(group, []).append(found.score / record.threshold)
        machine_clips = [c for c in clips if Path(c.path).stem in truth]
        for name, pick in (
            ("log-mel distance (the window's rule)", lambda c: verdicts[c.clip_id].group),
            (
                "detector score / threshold",
                lambda c: min(by_score[c.clip_id], key=lambda g: float(np.median(by_score[c.clip_id][g]))),
            ),
        ):
            group = sum(pick(c) == truth[Path(c.path).stem] for c in machine_clips)
            machine = sum(pick(c).split("/")[0] == truth[Path(c.path).stem].split("/")[0] for c in machine_clips)
            print(f"{name}: right machine {machine}/{len(machine_clips)}, right group {group}/{len(machine_clips)}")
        unlike = [c for c in machine_clips if verdicts[c.clip_id].unlike_every_group]
        others = [c for c in clips if c not in machine_clips]
        print(f"machine recordings called unlike every trained group: {len(unlike)}/{len(machine_clips)}")
        print(
            "other sounds called unlike: "
            + ", ".join(
                f"{Path(c.path).stem[6:]} {'yes' if verdicts[c.clip_id].unlike_every_group else 'no'} "
                f"({min(verdicts[c.clip_id].resemblance.values()):.1f}x)"
                for c in others
            )
        )
        print(f"score_drops: {took:.1f} s for {len(clips)} drops ({len(drops.candidate_groups(project))} groups)")
        project.close()


if __name__ == "__main__":
    main()
