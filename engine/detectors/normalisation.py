"""Scores on one scale: a detector's score measured against its own held-out training-normal scores.

Detectors score on scales of their own (a k-NN distance, a reconstruction error, a patch dissimilarity), so
their raw scores cannot be compared or combined. Each fitted detector keeps the scores its training normals
got from a model that did not see them (what its threshold is learnt from); the normalised score of a clip is
its score less the mean of those scores of the clip's domain, over their standard deviation: a z-score
against the training-normal distribution of that domain (GenRep 2025 normalises per domain the same way).
A domain with fewer than `MIN_PER_DOMAIN` held-out scores uses the scores of both domains pooled.

Why the mean and standard deviation and not the median and MAD (robust, since a k-NN's held-out scores are
skewed): measured on the toy set (`python tests/bench/bench_normalisation.py`: 2 seeds, 6 groups, 240 test
clips, each detector fitted on all of a group's normals and on 4 source clips), the MAD of a few to a few
dozen held-out scores is small (a tight cluster), so the robust scale puts far more unseen normal clips
beyond +3 (fitted on all normals: knn 17 % against 2.5 %, patch_memory 24 % against 17 %; on 4 clips:
knn 39 % against 15 %, patch_memory 45 % against 7.5 %) and the mean of the three detectors' normalised
scores ranks worse (AUC robust 0.76, z-score 0.86 on all normals; 0.74 and 0.72 on 4 clips). The
skew moves the mean, which shifts 0 by the same amount for every clip of a domain and leaves rankings
within it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: A domain with fewer held-out scores than this is normalised with the pooled statistics.
MIN_PER_DOMAIN = 3
DOMAINS = ("source", "target")


def spread_floor(mean: float) -> float:
    """The smallest spread a normalisation divides by, so identical (or single) scores never divide by 0."""
    return max(1e-6 * max(1.0, abs(mean)), 1e-12)


def score_stats(scores: Sequence[float] | np.ndarray) -> list[float] | None:
    """[mean, std, count] of the finite scores (std floored; one score's spread is a tenth of its size);
    None when there is none."""
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.1 * abs(mean)
    return [mean, max(std, spread_floor(mean)), int(values.size)]


def domain_stats(by_clip: Mapping[str, float], domain_of: Mapping[str, str | None]) -> dict[str, list[float]]:
    """Per domain ("source", "target") and pooled ("all"): [mean, std, count] of the held-out clip scores.
    A clip of no known domain counts only in the pooled statistics."""
    stats = {}
    pooled = score_stats(list(by_clip.values()))
    if pooled is not None:
        stats["all"] = pooled
    for domain in DOMAINS:
        found = score_stats([score for clip_id, score in by_clip.items() if domain_of.get(clip_id) == domain])
        if found is not None:
            stats[domain] = found
    return stats


def normalised_score(score: float, domain: str | None, stats: Mapping[str, Sequence[float]] | None) -> float:
    """(score - mean) / std with the clip's domain statistics where that domain has at least
    `MIN_PER_DOMAIN` held-out scores, else the pooled ones; NaN without statistics (a model saved before
    they were kept, or one trained from labels)."""
    if not stats:
        return float("nan")
    chosen = stats.get(domain or "") if domain else None
    if chosen is None or chosen[2] < MIN_PER_DOMAIN:
        chosen = stats.get("all")
    if chosen is None:
        return float("nan")
    return float((score - chosen[0]) / chosen[1])


def normalised_frames(values: np.ndarray, stats: Sequence[float] | None) -> np.ndarray:
    """Frame scores (or a map in the same units) against the held-out frame scores' [mean, std]; NaN
    without statistics."""
    values = np.asarray(values, dtype=np.float32)
    if not stats:
        return np.full(values.shape, np.nan, dtype=np.float32)
    return ((values - stats[0]) / stats[1]).astype(np.float32)


def domain_shift(stats: Mapping[str, Sequence[float]] | None) -> float:
    """How far apart a detector's held-out target-domain and source-domain scores sit: the distance between
    their means over the narrower of their two spreads (`domain_stats`' statistics; far apart against either
    domain's spread, the score tells the domains apart); 0 where either domain has a single held-out score
    or none (`score_stats` makes one score's spread up). Two scores do count: `dcase_ae` holds out 2 target
    clips of 10, and ignoring them cost the ensemble 0.009 AUC on the condition matrix."""
    source, target = (stats or {}).get("source"), (stats or {}).get("target")
    if not source or not target or min(source[2], target[2]) < 2:
        return 0.0
    return float(abs(target[0] - source[0]) / min(source[1], target[1]))
