"""The official DCASE Task 2 figures (2023 onward), computed exactly as the organisers' evaluator does.

- AUC per section and domain: that domain's normal clips plus *all* anomalous clips of the section;
- pAUC per section over both domains with max_fpr = 0.1: scikit-learn's standardised partial AUC;
- the official score: the harmonic mean over every AUC_source, AUC_target and pAUC value of every section
  of every machine, each floored at the smallest positive float first;
- decisions (score > threshold): precision, recall and F1 per domain, over that domain's clips.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

MAX_FPR = 0.1
EPSILON = sys.float_info.epsilon


@dataclass(frozen=True)
class ScoredClip:
    """One test clip's truth and a detector's output."""

    clip_id: str
    domain: str
    is_anomaly: bool
    score: float
    decision: bool


@dataclass(frozen=True)
class SectionResult:
    machine_type: str
    section_id: str
    auc_source: float
    auc_target: float
    pauc: float
    precision_source: float
    recall_source: float
    f1_source: float
    precision_target: float
    recall_target: float
    f1_target: float
    clips: int

    def as_dict(self) -> dict:
        return asdict(self)


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve; NaN when only one class is present (it is undefined then)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score  # here: scipy and sklearn would add a second to the window's start

    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def pauc(labels: Sequence[bool], scores: Sequence[float], max_fpr: float = MAX_FPR) -> float:
    """Standardised partial AUC over false-positive rates 0..max_fpr (McClish), as scikit-learn computes it."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64), max_fpr=max_fpr))


def precision_recall_f1(labels: Sequence[bool], decisions: Sequence[bool]) -> tuple[float, float, float]:
    """As the evaluator: each denominator floored at epsilon, so an empty class gives 0, not an error."""
    labels = np.asarray(labels, dtype=bool)
    decisions = np.asarray(decisions, dtype=bool)
    tp = float(np.sum(labels & decisions))
    fp = float(np.sum(~labels & decisions))
    fn = float(np.sum(labels & ~decisions))
    precision = tp / max(tp + fp, EPSILON)
    recall = tp / max(tp + fn, EPSILON)
    f1 = 2 * precision * recall / max(precision + recall, EPSILON)
    return precision, recall, f1


def section_result(machine_type: str, section_id: str, clips: Sequence[ScoredClip]) -> SectionResult:
    """Every official figure of one section from its scored test clips."""

    def subset(keep) -> tuple[list[bool], list[float], list[bool]]:
        chosen = [c for c in clips if keep(c)]
        return [c.is_anomaly for c in chosen], [c.score for c in chosen], [c.decision for c in chosen]

    labels_s, scores_s, _ = subset(lambda c: c.domain == "source" or c.is_anomaly)
    labels_t, scores_t, _ = subset(lambda c: c.domain == "target" or c.is_anomaly)
    labels_all, scores_all, _ = subset(lambda c: True)
    decided_s = subset(lambda c: c.domain == "source")
    decided_t = subset(lambda c: c.domain == "target")
    # A domain with no clips has no decisions to judge: undefined (shown "-"), not a precision of 0.
    nothing = (float("nan"),) * 3
    p_s, r_s, f_s = precision_recall_f1(decided_s[0], decided_s[2]) if decided_s[0] else nothing
    p_t, r_t, f_t = precision_recall_f1(decided_t[0], decided_t[2]) if decided_t[0] else nothing
    return SectionResult(
        machine_type,
        section_id,
        auc(labels_s, scores_s),
        auc(labels_t, scores_t),
        pauc(labels_all, scores_all),
        p_s,
        r_s,
        f_s,
        p_t,
        r_t,
        f_t,
        len(clips),
    )


def official_score(sections: Sequence[SectionResult]) -> float:
    """Harmonic mean over all AUC_source, AUC_target and pAUC values (undefined ones left out)."""
    values = np.array([v for s in sections for v in (s.auc_source, s.auc_target, s.pauc)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    from scipy.stats import hmean

    return float(hmean(np.maximum(values, EPSILON)))
