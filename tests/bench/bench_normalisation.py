"""Benchmark: which normalisation puts every detector's scores on one scale, the z-score (mean, std) or the
robust one (median, MAD x 1.4826), both per domain against the held-out training-normal scores.

    python tests/bench/bench_normalisation.py [--scale 0.01] [--seeds 3] [--few 4]

On the synthetic set (`engine.data.toy`, 1 s clips), every unsupervised detector is fitted per machine and
section, once on all of its normal training clips and once on only `--few` source clips (a user's handful),
and scores the test clips. For each normalisation:
- where normal test clips land: their median normalised score, and the share beyond +3 (a scale that puts
  many unseen normals far out misleads the user and the ensemble);
- how well one threshold serves every group: AUC over all groups' test clips pooled (raw scores of different
  groups are on different scales; a normalisation that works makes the pooled AUC close to the per-group
  mean);
- the AUC of the mean of the detectors' normalised scores (what the ensemble does with them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.audio.feature_cache import FeatureCache  # noqa: E402
from engine.data.importers import import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate  # noqa: E402
from engine.detectors.normalisation import MIN_PER_DOMAIN  # noqa: E402
from engine.detectors.registry import detector_class, make_config  # noqa: E402
from engine.store import Project  # noqa: E402

DETECTORS = {"knn": {}, "patch_memory": {}, "dcase_ae": {"epochs": 20}}


def robust_stats(scores: np.ndarray) -> list[float] | None:
    scores = scores[np.isfinite(scores)]
    if not scores.size:
        return None
    median = float(np.median(scores))
    mad = 1.4826 * float(np.median(np.abs(scores - median)))
    return [median, max(mad, 1e-6 * max(1.0, abs(median))), int(scores.size)]


def z_stats(scores: np.ndarray) -> list[float] | None:
    from engine.detectors.normalisation import score_stats

    return score_stats(scores)


def normalise(
    score: float, domain: str | None, held: dict[str, float], domains: dict[str, str | None], stats_of
) -> float:
    values = {d: np.array([s for c, s in held.items() if domains.get(c) == d]) for d in ("source", "target")}
    chosen = stats_of(values[domain]) if domain in values and len(values[domain]) >= MIN_PER_DOMAIN else None
    chosen = chosen or stats_of(np.array(list(held.values())))
    return (score - chosen[0]) / chosen[1]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def run(scale: float, seed: int, few: int | None, work: Path) -> dict:
    data = work / f"toy{seed}"
    generate(data, ToyConfig(scale=scale, seed=seed, duration_s=1.0, sections=2))
    found: dict = {}
    with Project.create(work / f"project{seed}-{few}") as project:
        import_source(project, data, "metadata")
        clips = project.clips()
        groups = sorted({c.group for c in clips})
        for key, settings in DETECTORS.items():
            for group in groups:
                train = sorted((c for c in clips if c.group == group and c.split == "train"), key=lambda c: c.clip_id)
                if few:
                    train = [c for c in train if c.domain == "source"][:few]
                test = [c for c in clips if c.group == group and c.split == "test"]
                detector = detector_class(key)(make_config(key, settings), cache=FeatureCache(work / "features"))
                detector.fit(train)
                for clip, d in zip(test, detector.score(test), strict=True):
                    row = found.setdefault(clip.clip_id, {"label": clip.label == "anomaly", "group": group})
                    row[key] = {
                        "raw": d.score,
                        "z": normalise(
                            d.score, clip.domain, detector.held_out_by_clip, detector.held_out_domains, z_stats
                        ),
                        "robust": normalise(
                            d.score, clip.domain, detector.held_out_by_clip, detector.held_out_domains, robust_stats
                        ),
                    }
    return found


def report(rows: list[dict]) -> None:
    labels = np.array([r["label"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    print(f"{'detector':14} {'scale':7} {'normal median':>13} {'normal > 3':>10} {'pooled AUC':>10} {'group AUC':>9}")
    for key in DETECTORS:
        for scale in ("raw", "z", "robust"):
            values = np.array([r[key][scale] for r in rows])
            per_group = [auc(labels[groups == g], values[groups == g]) for g in np.unique(groups)]
            normal = values[~labels]
            print(
                f"{key:14} {scale:7} {np.median(normal):13.2f} {np.mean(normal > 3):10.1%} "
                f"{auc(labels, values):10.3f} {np.mean(per_group):9.3f}"
            )
    for scale in ("z", "robust"):
        fused = np.array([np.mean([r[key][scale] for key in DETECTORS]) for r in rows])
        print(
            f"{'mean fusion':14} {scale:7} {'':13} {'':10} {auc(labels, fused):10.3f} "
            f"{np.mean([auc(labels[groups == g], fused[groups == g]) for g in np.unique(groups)]):9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--few", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for few in (None, args.few):
            rows = []
            for seed in range(args.seeds):
                rows += list(run(args.scale, seed, few, Path(folder)).values())
            print(
                f"\n== fitted on {'all normal training clips' if few is None else f'{few} source clips'} "
                f"({args.seeds} seeds, {len(rows)} test clips)"
            )
            report(rows)


if __name__ == "__main__":
    main()
