"""A detector's decision threshold from its held-out training scores: the quantile of a fitted gamma (the DCASE
baseline's rule), with the guards that keep it honest for few scores and for shapes a gamma fits badly."""

from __future__ import annotations

import math
import warnings

import numpy as np

from engine.errors import EarmarkError


def gamma_threshold(scores: np.ndarray, quantile: float) -> float:
    """The `quantile` of a gamma distribution fitted to `scores` (the DCASE baseline's rule); the plain
    empirical quantile when a gamma cannot be fitted (too few or identical scores).

    With fewer scores than the quantile can be read from (under 9 for 0.9: an unseen score exceeds the
    largest of n scores with probability 1 / (n + 1), more than 1 - quantile), any estimate from the scores
    alone sits too low, and a group fitted on 4 clips flagged most unseen normals. There the threshold is
    at least the largest score plus the scores' spread."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise EarmarkError("no training scores to learn a threshold from")
    value = _gamma_quantile(scores, quantile)
    if math.ceil(quantile * (scores.size + 1)) > scores.size:  # no order statistic reaches the quantile
        spread = float(scores.std(ddof=1)) if scores.size > 1 else 0.1 * abs(float(scores[0]))
        value = max(value, float(scores.max()) + spread)
    return value


def _gamma_quantile(scores: np.ndarray, quantile: float) -> float:
    import scipy.stats

    empirical = float(np.quantile(scores, quantile))
    if scores.size < 3 or np.ptp(scores) <= 1e-12 * max(1.0, abs(scores.mean())):
        return empirical
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape, loc, scale = scipy.stats.gamma.fit(scores)
            value = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
        except (ValueError, RuntimeError, FloatingPointError):
            return empirical
    # A fit that lands outside the data's own range, or below half the quantile's level of the data (a gamma
    # fitted to left-skewed scores, as fused z-scores can be, once put the 90th percentile below the 10th),
    # has failed; fall back rather than mislead.
    # (The range is measured with the interquartile spread: one score far below the rest inflates the
    # standard deviation until any fit passes.)
    lower, upper = np.quantile(scores, [0.25, 0.75])
    if (
        not np.isfinite(value)
        or value < np.quantile(scores, quantile / 2)
        or value > scores.max() + 3 * max((upper - lower) / 1.349, 1e-12 * max(1.0, abs(empirical)))
    ):
        return empirical
    # Nor may it leave many more of the scores above it than the quantile says (1.5 times, and one score of
    # slack for a small group): scores of two clusters (target clips against mostly-source statistics) or a
    # long left tail bend a gamma so that its "90th percentile" sat near the scores' 70th, and a third of
    # unseen normals were flagged.
    if np.mean(scores > value) > 1.5 * (1.0 - quantile) + 1.0 / scores.size:
        return empirical
    # Nor far fewer: one held-out score far below the rest (a target clip measured against two near-identical
    # others, at -97 spreads) stretched a gamma until no score of 53 lay above its "90th percentile" (19.9,
    # where the scores ended at 1.8), and the ensemble flagged no target anomaly. Fewer scores above than a
    # sample of this size leaves with 1 % probability (from 44 scores on, with none above): fall back.
    if scipy.stats.binom.cdf(int(np.sum(scores > value)), scores.size, 1.0 - quantile) < 0.01:
        return empirical
    return value
