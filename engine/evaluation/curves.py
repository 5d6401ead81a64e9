"""The figures behind the evaluation table: per detector x machine x section, the labelled clips' scores as
arrays, their ROC curves (per domain, as the DCASE AUC counts them) and score histograms split by truth and
domain, with the threshold that decides. The window draws them; `engine.evaluation.html_report` writes them.

The rows are those `engine.evaluation.report.evaluate_project` evaluates (the newest model's scores per group,
labelled clips with a domain), so a curve's area is the table's AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.store import results
from engine.store.thresholds import effective_threshold

#: The histogram's kinds of clip, in the order they are drawn and listed.
KINDS = ("normal source", "normal target", "anomaly source", "anomaly target")


@dataclass
class ScoreSet:
    """One detector's scores of one machine section's labelled clips."""

    detector: str
    machine_type: str
    section_id: str
    #: The model that scored them (None when several did, e.g. a group's model and a project-wide one).
    model_id: int | None
    clip_ids: list[str]
    domains: list[str]
    is_anomaly: np.ndarray
    scores: np.ndarray
    #: NaN where the score has none (scored before normalised scores were kept).
    normalised: np.ndarray
    #: The threshold that decides for `model_id` (adjusted, else fitted); None without one model.
    threshold: float | None


@dataclass
class Histogram:
    #: bins + 1 edges; each bin holds scores in [edge, next edge), the last one its right edge too.
    edges: np.ndarray
    #: KINDS -> clips per bin.
    counts_by_kind: dict[str, np.ndarray]
    #: The clips in each bin, in the set's order.
    clip_ids_by_bin: list[list[str]]


def score_sets(project, detectors: Sequence[str] | None = None, split: str = "test") -> list[ScoreSet]:
    """A ScoreSet per detector x machine x section with labelled clips of `split` that have a domain."""
    rows = results.latest_scores(project, split=split)
    if detectors is not None:
        rows = [r for r in rows if r.detector in detectors]
    grouped: dict[tuple[str, str, str], list[results.ScoreRow]] = {}
    for r in rows:
        if r.label not in ("normal", "anomaly") or r.domain not in ("source", "target"):
            continue
        key = (r.detector, r.machine_type or "unknown", r.section_id or "00")  # as evaluate_rows groups them
        grouped.setdefault(key, []).append(r)
    records = {m.model_id: m for m in results.models(project)}
    found = []
    for (detector, machine, section), chosen in sorted(grouped.items()):
        ids = {r.model_id for r in chosen}
        model_id = next(iter(ids)) if len(ids) == 1 else None
        record = records.get(model_id) if model_id is not None else None
        found.append(
            ScoreSet(
                detector,
                machine,
                section,
                model_id,
                [r.clip_id for r in chosen],
                [r.domain for r in chosen],
                np.array([r.label == "anomaly" for r in chosen], dtype=bool),
                np.array([r.score for r in chosen], dtype=np.float64),
                np.array([np.nan if r.normalised is None else r.normalised for r in chosen], dtype=np.float64),
                effective_threshold(record) if record is not None else None,
            )
        )
    return found


def domain_mask(score_set: ScoreSet, domain: str | None) -> np.ndarray:
    """The clips a domain's AUC counts: that domain's normal clips and every anomalous clip of the section
    (the DCASE rule); None: every clip."""
    if domain is None:
        return np.ones(len(score_set.clip_ids), dtype=bool)
    domains = np.array(score_set.domains, dtype=object)
    return (domains == domain) | score_set.is_anomaly


def roc_points(score_set: ScoreSet, domain: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve over `domain_mask`'s clips, as scikit-learn's roc_curve gives
    them (a clip is flagged at a point when its score >= that point's threshold; the first threshold is
    +inf). Empty arrays when the clips hold only one class: the curve is undefined then."""
    keep = domain_mask(score_set, domain) & np.isfinite(score_set.scores)
    labels = score_set.is_anomaly[keep]
    if labels.all() or not labels.any():
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty.copy(), empty.copy()
    from sklearn.metrics import roc_curve  # here: sklearn adds a second to the window's start

    fpr, tpr, thresholds = roc_curve(labels, score_set.scores[keep], drop_intermediate=False)
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds.astype(np.float64)


def kinds_of(score_set: ScoreSet) -> np.ndarray:
    """Each clip's KINDS entry ("anomaly target", ...)."""
    truth = np.where(score_set.is_anomaly, "anomaly", "normal")
    return np.array([f"{t} {d}" for t, d in zip(truth, score_set.domains, strict=True)], dtype=object)


def histogram(score_set: ScoreSet, bins: int = 30) -> Histogram:
    """The scores in `bins` equal bins over their range, counted per kind of clip, with each bin's clips."""
    finite = np.isfinite(score_set.scores)
    values = score_set.scores[finite]
    edges = np.histogram_bin_edges(values, bins=bins) if values.size else np.linspace(0.0, 1.0, bins + 1)
    # The bin of each clip as np.histogram puts it: [edge, next edge), the last bin closed on the right.
    index = np.clip(np.searchsorted(edges, score_set.scores, side="right") - 1, 0, bins - 1)
    kinds = kinds_of(score_set)
    counts = {kind: np.zeros(bins, dtype=np.int64) for kind in KINDS}
    members: list[list[str]] = [[] for _ in range(bins)]
    for clip_id, kind, b, ok in zip(score_set.clip_ids, kinds, index, finite, strict=True):
        if ok:
            counts[kind][b] += 1
            members[b].append(clip_id)
    return Histogram(edges, counts, members)
