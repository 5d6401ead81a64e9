"""Benchmark: the ensemble against its members, and the three fusions, on the synthetic set.

    python tests/bench/bench_ensemble.py [--scale 0.05] [--duration 2] [--sections 1] [--sizes 3,10]
                                         [--seeds 0] [--ae-epochs 20] [--anomalies transient] [--test-each 8]

Each member (dcase_ae, knn, patch_memory) is fitted once per group, training size and seed, on the group's
first N source and first N target normal training clips (as many as there are); the ensembles are built from
those fitted members (`EnsembleDetector.from_members`, mean, min and max fusion of scores normalised per
domain or pooled), so every row is measured
on the same models. Per cell (group x domain x size x seed): AUC of that domain's test normals against its
anomalies, the share of test normals flagged and decision F1. Prints one JSON line per detector with the
means over the cells. `--anomalies`, and `max(sizes)` source and 10 target training clips with `--test-each`
test clips per domain and label, are passed to the generator where it has those options (else `--scale`).
"""

from __future__ import annotations

import argparse
import dataclasses
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
from engine.detectors.ensemble import EnsembleDetector  # noqa: E402
from engine.detectors.ensemble.detector import NORMALISE_BY  # noqa: E402
from engine.detectors.ensemble.grid import FUSIONS  # noqa: E402
from engine.detectors.registry import detector_class, make_config  # noqa: E402
from engine.evaluation.metrics import auc  # noqa: E402
from engine.store import Project  # noqa: E402

MEMBERS = ("dcase_ae", "knn", "patch_memory")


def cells(project: Project, sizes: list[int]):
    for group in sorted({c.group for c in project.clips()}):
        clips = [c for c in project.clips() if c.group == group]
        train = sorted((c for c in clips if c.split == "train" and c.label != "anomaly"), key=lambda c: c.clip_id)
        test = [c for c in clips if c.split == "test"]
        for size in sizes:
            chosen = [c for c in train if c.domain == "source"][:size] + [c for c in train if c.domain == "target"][
                :size
            ]
            yield group, size, chosen, test


def figures(test, detections) -> dict[str, dict]:
    found = {d.clip_id: d for d in detections}
    out = {}
    for domain in ("source", "target"):
        clips = [c for c in test if c.domain == domain and c.clip_id in found]
        labels = [c.label == "anomaly" for c in clips]
        scores = [found[c.clip_id].score for c in clips]
        decisions = np.array([found[c.clip_id].decision for c in clips])
        truth = np.array(labels)
        tp = int((decisions & truth).sum())
        f1 = 2 * tp / max(int(decisions.sum()) + int(truth.sum()), 1)
        out[domain] = {"auc": auc(labels, scores), "flagged": float(decisions[~truth].mean()), "f1": f1}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--sections", type=int, default=1)
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--ae-epochs", type=int, default=20)
    parser.add_argument("--anomalies", default="")
    parser.add_argument("--test-each", type=int, default=8)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: dict[str, list[dict]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            toy = ToyConfig(scale=args.scale, seed=seed, duration_s=args.duration, sections=args.sections)
            options = {f.name for f in dataclasses.fields(ToyConfig)}
            if args.anomalies and "anomalies" in options:
                toy = dataclasses.replace(toy, anomalies=args.anomalies)
            if "train_counts" in options:  # as many normals as the largest size asks for, DCASE's 10 target
                toy = dataclasses.replace(toy, train_counts=(max(sizes), 10), test_each=args.test_each)
            audio = Path(tmp) / f"toy{seed}"
            generate(audio, toy)
            with Project.create(Path(tmp) / f"project{seed}") as project:
                import_source(project, audio, "metadata")
                cache = FeatureCache(Path(tmp) / f"features{seed}")
                for group, size, train, test in cells(project, sizes):
                    members = []
                    for key in MEMBERS:
                        member = detector_class(key)(
                            make_config(key, {"epochs": args.ae_epochs} if key == "dcase_ae" else {}), cache=cache
                        )
                        started = time.perf_counter()
                        member.fit(train)
                        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
                        members.append(member)
                        rows.setdefault(key, []).append(figures(test, member.score(test)))
                    for fusion in FUSIONS:
                        for by in NORMALISE_BY:
                            name = f"ensemble ({fusion}, {by})"
                            config = make_config("ensemble", {"fusion": fusion, "normalise_by": by})
                            ensemble = EnsembleDetector.from_members(members, config)
                            rows.setdefault(name, []).append(figures(test, ensemble.score(test)))
                    print(f"# {group} size {size} seed {seed} done", file=sys.stderr, flush=True)
    for name, found in rows.items():
        by = {
            f"{what}_{domain}": float(np.mean([r[domain][what] for r in found]))
            for domain in ("source", "target")
            for what in ("auc", "flagged", "f1")
        }
        mean_auc = float(np.mean([r[d]["auc"] for r in found for d in ("source", "target")]))
        print(
            json.dumps(
                {
                    "detector": name,
                    "cells": 2 * len(found),
                    "mean_auc": round(mean_auc, 4),
                    **{k: round(v, 4) for k, v in by.items()},
                    "fit_s": round(seconds.get(name, 0.0), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
