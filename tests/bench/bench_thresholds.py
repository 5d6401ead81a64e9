"""Benchmark: how many unseen normal test clips each detector flags, fitted on a group's training normals as
the demo does and on just 4 of them, with the AUC beside it (a threshold does not change the ranking).

    python tests/bench/bench_thresholds.py [--scale 0.05] [--duration 2] [--sections 1] [--ae-epochs 20]
    EARMARK_SOURCE=/path/to/an/older/checkout python tests/bench/bench_thresholds.py   # the same, older code

The synthetic set at the demo's scale (50 source + 3 target training normals per machine and section, 5 test
clips per domain and label), with shorter clips and fewer sections so it runs in minutes on a laptop's CPU.
"all": each detector fitted on every training normal of the group (the demo); "few": on the group's first
4 source-domain normals, scored on test clips of the source domain (the conditions it was recorded in).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("EARMARK_SOURCE", str(Path(__file__).resolve().parents[2])))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.data.importers import import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate  # noqa: E402
from engine.detectors.registry import detector_class, make_config  # noqa: E402
from engine.evaluation.metrics import auc  # noqa: E402
from engine.store import Project  # noqa: E402

DETECTORS = ("knn", "patch_memory", "dcase_ae")
FEW = 4


def measure(project: Project, key: str, setting: str, epochs: int, features: Path) -> dict:
    flags: dict[str, list[bool]] = {"source": [], "target": [], "anomaly": []}
    aucs, seconds = [], 0.0
    for group in sorted({c.group for c in project.clips()}):
        clips = [c for c in project.clips() if c.group == group]
        train = [c for c in clips if c.split == "train"]
        test = [c for c in clips if c.split == "test"]
        if setting == "few":
            train = sorted((c for c in train if c.domain == "source"), key=lambda c: c.clip_id)[:FEW]
            test = [c for c in test if c.domain == "source"]
        detector = detector_class(key)(
            make_config(key, {"epochs": epochs} if key == "dcase_ae" else {}), cache=FeatureCache(features)
        )
        started = time.perf_counter()
        detector.fit(train)
        seconds += time.perf_counter() - started
        detections = detector.score(test)
        for clip, detection in zip(test, detections, strict=True):
            flags["anomaly" if clip.label == "anomaly" else clip.domain].append(detection.decision)
        aucs.append(auc([c.label == "anomaly" for c in test], [d.score for d in detections]))
    normals = flags["source"] + flags["target"]
    return {
        "normals_flagged": float(np.mean(normals)),
        **{f"{k}_flagged": float(np.mean(v)) if v else None for k, v in flags.items()},
        "mean_auc": float(np.mean(aucs)),
        "fit_s": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--sections", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ae-epochs", type=int, default=20)
    parser.add_argument("--data", type=Path, default=None, help="reuse (or make) the synthetic set here")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch) / "toy"
        if not (data / "metadata.csv").is_file():
            generate(
                data, ToyConfig(scale=args.scale, seed=args.seed, duration_s=args.duration, sections=args.sections)
            )
        with Project.create(Path(scratch) / "project") as project:
            import_source(project, data, "metadata")
            results = {}
            for key in args.detectors:
                for setting in ("all", "few"):
                    results[f"{key}/{setting}"] = found = measure(
                        project, key, setting, args.ae_epochs, Path(scratch) / "features"
                    )
                    target = "-" if found["target_flagged"] is None else f"{found['target_flagged']:.2f}"
                    print(
                        f"{key:13s} {setting:4s} normals flagged {found['normals_flagged']:.2f} (source "
                        f"{found['source_flagged']:.2f}, target {target}), anomalies "
                        f"flagged {found['anomaly_flagged']:.2f}, mean AUC {found['mean_auc']:.3f}, "
                        f"fit {found['fit_s']} s",
                        flush=True,
                    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
