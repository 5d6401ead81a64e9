"""Benchmark: detector scoring throughput against the load + log-mel floor, bank fitting time, and every
detector's official score on the synthetic set.

    python tests/bench/bench_scoring.py [--seeds 0 1 2] [--ae-epochs 100] [--skip-quality]

1. Floor: decoding every clip of the demo-sized set and computing its log-mel spectrogram (the feature
   cache switched off), in clips/s. Then `knn` over `logmel` scoring the same clips from a cold cache through
   the full project path (features, bank distances, frame lane, scores and lanes written): clips/s and the
   ratio to the floor.
2. Fitting `knn` on one group of 1000 normal training clips: cold (features computed) and warm (cached).
3. Official score of each detector on the synthetic set (scale 0.05) for each seed, and their mean.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.audio.features import LogMelConfig  # noqa: E402
from engine.data.importers import import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate  # noqa: E402
from engine.detectors import runs  # noqa: E402
from engine.detectors.registry import detector_class, make_config  # noqa: E402
from engine.device import pick_device  # noqa: E402
from engine.evaluation.report import evaluate_rows  # noqa: E402
from engine.store import Project  # noqa: E402


def project_for(root: Path, name: str, config: ToyConfig) -> Project:
    data = root / f"{name}-data"
    generate(data, config)
    project = Project.create(root / name)
    import_source(project, data, "metadata")
    return project


def throughput(root: Path) -> None:
    project = project_for(root, "throughput", ToyConfig(scale=0.05, seed=0))
    clips = project.clips()
    start = time.perf_counter()
    FeatureCache(None).features(clips, LogMelConfig())
    floor = len(clips) / (time.perf_counter() - start)

    session = runs.Session(project)
    runs.fit(session, "knn")
    shutil.rmtree(project.artifacts / "features")  # scoring starts cold, like the floor
    start = time.perf_counter()
    run = runs.score(session, "knn", split=None)
    knn = run.scored / (time.perf_counter() - start)
    print(f"floor (load + log-mel)      {floor:8.1f} clips/s   ({len(clips)} clips of 10 s)")
    print(f"knn scoring, cold cache     {knn:8.1f} clips/s   ratio to floor {knn / floor:.2f}")


def bank_fit(root: Path) -> None:
    project = project_for(root, "bank", ToyConfig(scale=1.0, seed=0, sections=1, machines=("fan",)))
    session = runs.Session(project)
    normals = [c for c in project.clips(split="train")]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        runs.fit(session, "knn")
        times.append(time.perf_counter() - start)
    print(f"knn fit, {len(normals)}-clip bank   cold {times[0]:6.2f} s   warm (features cached) {times[1]:6.2f} s")


def quality(root: Path, seeds: list[int], ae_epochs: int) -> None:
    figures: dict[str, list[float]] = {}
    for seed in seeds:
        project = project_for(root, f"quality-{seed}", ToyConfig(scale=0.05, seed=seed))
        cache = FeatureCache(project.artifacts / "features")
        groups = runs.groups_of(project.clips())
        variants = {
            "knn (DN, MemMixup)": ("knn", {}, None),
            "knn (no DN)": ("knn", {"domain_norm": False}, None),
            "knn (augmented bank)": ("knn", {"augment": True}, None),
            "dcase_ae (MSE)": ("dcase_ae", {"epochs": ae_epochs}, None),
        }
        rows: dict[str, list] = {name: [] for name in [*variants, "dcase_ae (Mahalanobis)"]}
        for clips in groups.values():
            test = [c for c in clips if c.split == "test"]
            for name, (key, settings, _) in variants.items():
                detector = detector_class(key)(make_config(key, settings), cache=cache)
                detector.fit(clips)
                rows[name] += [(c, d.score, d.decision) for c, d in zip(test, detector.score(test), strict=True)]
                if key == "dcase_ae":  # the same trained network, scored the selective-Mahalanobis way
                    detector.switch_mode("mahalanobis", clips)
                    rows["dcase_ae (Mahalanobis)"] += [
                        (c, d.score, d.decision) for c, d in zip(test, detector.score(test), strict=True)
                    ]
        for name, scored in rows.items():
            figures.setdefault(name, []).append(evaluate_rows(name, scored).official)
        print(f"seed {seed}: " + ", ".join(f"{name} {values[-1]:.3f}" for name, values in figures.items()), flush=True)
    print(
        f"\nofficial score on the synthetic set (scale 0.05, seeds {', '.join(map(str, seeds))}; dcase_ae "
        f"{ae_epochs} epochs)"
    )
    for name, values in sorted(figures.items(), key=lambda item: -statistics.mean(item[1])):
        print(f"  {name:<24} mean {statistics.mean(values):.3f}   per seed " + " ".join(f"{v:.3f}" for v in values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ae-epochs", type=int, default=100)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {pick_device()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        throughput(root)
        bank_fit(root)
        if not args.skip_quality:
            quality(root, args.seeds, args.ae_epochs)


if __name__ == "__main__":
    main()
