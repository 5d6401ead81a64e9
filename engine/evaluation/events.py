"""Event-level scores: how many proposed regions find a true anomaly region, one to one.

Frame figures (localization.py) say whether a lane is high in the right places; these say whether the
*regions* a user would review are right: each true region can be found by at most one proposal and each
proposal can find at most one true region. A proposal that finds nothing is a false positive (every
proposal on a normal clip is one), a true region nobody found is a false negative, and the counts are pooled
over clips before precision, recall and F1 are taken.

The criterion: a proposal and a true region match when their intersection over union (IoU) is at least
`min_iou`, 0.3 by default. That is the loosest of the temporal-IoU levels used to judge segment detection
(0.3 ... 0.7) and sits with DCASE's practice of tolerant collars for long events: a region that starts or
ends a fraction of a second off, or spans a short burst and a little around it, still counts, while a
proposal covering the whole clip does not find a 1 s anomaly in it. `min_iou=0` is "any overlap": the two
must share some time, however little.

Matching is one to one and maximal: as many pairs as possible, and among those the largest total IoU
(the assignment problem, solved with scipy's Hungarian method).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Intersection over union a proposal and a true region need to count as a match.
DEFAULT_MIN_IOU = 0.3

Span = tuple[float, float]


@dataclass(frozen=True)
class EventScores:
    """Pooled event counts and the figures from them. A ratio with nothing to count (no proposals at all,
    or no true regions at all) is 1.0: nothing claimed, nothing claimed wrongly."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> EventScores:
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        return cls(precision, recall, f1, tp, fp, fn)

    def as_dict(self) -> dict:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _as_spans(spans: Iterable[Sequence[float]]) -> np.ndarray:
    # Proposals may come as (start, end, peak, ...) or as objects with start_s / end_s.
    rows = [(float(s.start_s), float(s.end_s)) if hasattr(s, "start_s") else (float(s[0]), float(s[1])) for s in spans]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def iou_matrix(predicted: Iterable[Sequence[float]], truth: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """IoU [P, T] of every predicted span with every true span, and their intersections [P, T] in seconds."""
    p, t = _as_spans(predicted), _as_spans(truth)
    inter = np.clip(np.minimum(p[:, None, 1], t[None, :, 1]) - np.maximum(p[:, None, 0], t[None, :, 0]), 0, None)
    union = (p[:, None, 1] - p[:, None, 0]) + (t[None, :, 1] - t[None, :, 0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou, inter


def match_events(
    predicted: Iterable[Sequence[float]], truth: Iterable[Sequence[float]], min_iou: float = DEFAULT_MIN_IOU
) -> list[tuple[int, int, float]]:
    """One-to-one matches (predicted index, truth index, IoU) between spans of one clip.

    A pair may match when its IoU is at least `min_iou` (with `min_iou=0`: when the spans overlap at all).
    The matching has as many pairs as possible, and the largest total IoU among such matchings.
    """
    if min_iou < 0 or min_iou > 1:
        raise ValueError(f"min_iou is a fraction from 0 to 1, not {min_iou}")
    iou, inter = iou_matrix(predicted, truth)
    if iou.size == 0:
        return []
    eligible = inter > 0 if min_iou == 0 else iou >= min_iou - 1e-12
    if not eligible.any():
        return []
    from scipy.optimize import linear_sum_assignment

    # Each eligible pair is worth more than any total of IoUs, so the most pairs win, then the best overlap.
    bonus = float(min(iou.shape) + 1)
    weights = np.where(eligible, bonus + iou, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols, strict=True) if eligible[r, c]]


def event_counts(
    predicted: Iterable[Sequence[float]], truth: Iterable[Sequence[float]], min_iou: float = DEFAULT_MIN_IOU
) -> tuple[int, int, int]:
    """(tp, fp, fn) of one clip."""
    predicted, truth = _as_spans(predicted), _as_spans(truth)
    tp = len(match_events(predicted, truth, min_iou))
    return tp, len(predicted) - tp, len(truth) - tp


def event_f1(
    clips: Iterable[tuple[Iterable[Sequence[float]], Iterable[Sequence[float]]]], min_iou: float = DEFAULT_MIN_IOU
) -> EventScores:
    """Precision, recall and F1 over clips, each given as (predicted spans, true spans); counts are pooled.
    A normal clip is (its proposals, []): every proposal on it is a false positive."""
    tp = fp = fn = 0
    for predicted, truth in clips:
        a, b, c = event_counts(predicted, truth, min_iou)
        tp, fp, fn = tp + a, fp + b, fn + c
    return EventScores.from_counts(tp, fp, fn)
