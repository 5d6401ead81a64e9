"""Proposed regions from a detector's frame scores, for the user to accept, adjust or reject.

A proposal is a stretch of a clip where the detector's frame-score lane is high. It is found by hysteresis
on two levels: a region opens where the score reaches `on` and closes where it falls below `off` (so a dip
that stays above `off` does not split it, while one below `off` does). Regions closer than `merge_gap_s`
are then joined and those shorter than `min_duration_s` dropped.

`propose` is pure numpy and fast enough to run on every move of a slider; `settings_for` turns ratios of
the model's own frame threshold into levels, so one set of ratios serves every model group whatever the
scale of its scores (not its offset: for a model whose normal frames score far above 0, an off ratio below 1
reaches down into its background sooner); `propose_clip` and `propose_all` read a project's stored lanes and write the
proposals into its region store, replacing that model's earlier proposals on each clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import ArtifactError
from engine.evaluation.localization import frame_edges
from engine.jobs import Progress
from engine.store import labels, results
from engine.store.labels import LabelError, Region
from engine.store.project import Project

#: Defaults, chosen on the test clips of the demo project and of a second demo set (generator seed 1) with
#: tests/bench/bench_proposals.py --sweep, for event F1 at IoU >= 0.3 averaged over knn, patch_memory and
#: dcase_ae: the level a region may dip to before it ends (a share of the model's frame threshold; 1.0 to
#: 0.8 score within 0.01 of each other, 0.9 keeps a little hysteresis against jittery lanes), the shortest
#: region kept (0.1 s drops single fine frames; longer minimums cost the fine-framed detectors their short
#: bursts) and the gap below which two regions are joined (1.0 to 1.5 s is a plateau; below 0.7 s an
#: anomaly's lane breaks into pieces that each fail the IoU test).
DEFAULT_OFF_RATIO = 0.9
DEFAULT_MIN_DURATION_S = 0.1
DEFAULT_MERGE_GAP_S = 1.0
#: The quantile of a clip's own frame scores that stands in for a model without a usable frame threshold.
FALLBACK_QUANTILE = 0.95
#: Frames a lane's spread is estimated from, at most (an even stride through longer lanes).
SPREAD_SAMPLE = 8192


@dataclass(frozen=True)
class ProposalSettings:
    """Levels on the frame-score scale (absolute, not ratios) and the region clean-up in seconds."""

    on: float
    off: float
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    merge_gap_s: float = DEFAULT_MERGE_GAP_S

    def __post_init__(self) -> None:
        if not (math.isfinite(self.on) and math.isfinite(self.off)):
            raise LabelError(
                f"proposal levels must be numbers (on {self.on}, off {self.off}); the model may "
                "have no usable frame threshold, so fit it again"
            )
        if self.off > self.on:
            raise LabelError(
                f"the level that ends a proposal ({self.off:.4g}) is above the level that starts "
                f"one ({self.on:.4g}); set the off level at or below the on level"
            )
        if not (self.min_duration_s >= 0 and self.merge_gap_s >= 0):
            raise LabelError(
                "the shortest proposal and the gap that joins two must be 0 s or more (got "
                f"{self.min_duration_s} s and {self.merge_gap_s} s)"
            )


@dataclass(frozen=True)
class Proposal:
    """A proposed region: its span in seconds, the highest frame score in it and a confidence in [0, 1]."""

    start_s: float
    end_s: float
    peak: float
    confidence: float


def robust_spread(scores: np.ndarray) -> float:
    """The spread of a lane's finite frame scores: the median absolute deviation scaled to a standard
    deviation (1.4826 MAD), else the standard deviation, else a tiny positive number (a flat lane). Long
    lanes are sampled at an even stride (at most `SPREAD_SAMPLE` frames), which keeps it fast and barely
    changes a robust figure."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return 1e-12
    if finite.size > SPREAD_SAMPLE:
        finite = finite[:: -(-finite.size // SPREAD_SAMPLE)]
    mad = 1.4826 * float(np.median(np.abs(finite - np.median(finite))))
    if mad > 0:
        return mad
    std = float(finite.std())
    return std if std > 0 else max(1e-12, 1e-9 * float(np.abs(finite).max()))


def propose(
    frame_times: Sequence[float] | np.ndarray, frame_scores: Sequence[float] | np.ndarray, settings: ProposalSettings
) -> list[Proposal]:
    """Proposed regions of one lane, in time order.

    Hysteresis, as a Schmitt trigger: a region opens at a frame scoring at or above `settings.on` and stays
    open while frames score at or above `settings.off`; it closes before the first frame below `off`. Its
    edges are the edges of the stretches its first and last frame stand for (halfway to the neighbouring
    frames, half the median step beyond the lane's ends), clipped at 0 s. A NaN frame counts as below `off`:
    it never opens a region and ends the one it falls in. Regions whose gap is shorter than `merge_gap_s`
    are merged (keeping the higher peak), then regions shorter than `min_duration_s` dropped, as is a
    region of zero length (a lane of one frame has no step to give it a length).

    `confidence` is a logistic of how far the region's peak rises above `on`, in units of the lane's robust
    spread of frame scores (`robust_spread`: 1.4826 x median absolute deviation):
    1 / (1 + exp(-(peak - on) / spread)). It is 0.5 exactly at `on`, grows with the peak, and does not
    change when every score is scaled or shifted (with the levels).
    """
    times = np.asarray(frame_times, dtype=np.float64)
    scores = np.asarray(frame_scores, dtype=np.float64)
    if times.ndim != 1 or times.shape != scores.shape:
        raise LabelError(
            f"a lane needs one time per frame score (got {times.shape} times and {scores.shape} "
            "scores); score the clip again"
        )
    n = len(times)
    if n == 0:
        return []
    if n > 1 and not np.all(times[1:] > times[:-1]):
        raise LabelError("a lane's frame times must rise from frame to frame; score the clip again")
    strong = np.flatnonzero(scores >= settings.on)
    if len(strong) == 0:
        return []
    weak = scores >= settings.off  # NaN compares False: it neither opens nor carries a region
    # Runs of frames at or above `off`, as [start, stop) frame indices.
    rises, falls = weak.copy(), weak.copy()
    rises[1:] &= ~weak[:-1]
    falls[:-1] &= ~weak[1:]
    starts, stops = np.flatnonzero(rises), np.flatnonzero(falls) + 1
    # A region opens at the first frame of a run that reaches `on` (a run without one is no region) and
    # stays open to the run's end, where the score falls below `off`.
    at = np.searchsorted(strong, starts)
    opened = at < len(strong)
    opened[opened] = strong[at[opened]] < stops[opened]
    starts, stops = strong[at[opened]], stops[opened]
    # Peak per region: reduceat over [start, stop) and [stop, next start) alternately, keeping the former.
    bounds = np.empty(2 * len(starts), dtype=np.intp)
    bounds[0::2], bounds[1::2] = starts, stops
    peaks = np.maximum.reduceat(scores, bounds[:-1] if bounds[-1] == n else bounds)[0::2]
    begin, end = frame_edges(times, starts)[0], frame_edges(times, stops - 1)[1]
    begin = np.maximum(begin, 0.0)
    if len(begin) > 1:
        # Join regions across short gaps: a new group starts wherever the gap is not short.
        opens = np.concatenate([[True], begin[1:] - end[:-1] >= settings.merge_gap_s])
        first = np.flatnonzero(opens)
        last = np.concatenate([first[1:] - 1, [len(begin) - 1]])
        peaks = np.maximum.reduceat(peaks, first)
        begin, end = begin[first], end[last]
    kept = (end - begin >= settings.min_duration_s) & (end > begin)
    if not kept.any():
        return []
    begin, end, peaks = begin[kept], end[kept], peaks[kept]
    spread = robust_spread(scores)
    confidence = 1.0 / (1.0 + np.exp(-np.clip((peaks - settings.on) / spread, -700, 700)))
    return [
        Proposal(float(b), float(e), float(p), float(c))
        for b, e, p, c in zip(begin, end, peaks, confidence, strict=True)
    ]


def settings_for(
    frame_threshold: float | None,
    frame_scores: Sequence[float] | np.ndarray,
    on_ratio: float = 1.0,
    off_ratio: float = DEFAULT_OFF_RATIO,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
) -> ProposalSettings:
    """Levels as multiples of the model's frame threshold: on = on_ratio x threshold, off = off_ratio x
    threshold. With the defaults a region starts where the model itself would call a frame anomalous.

    A model without a usable frame threshold (None, not finite, or not above 0, where multiples would turn
    the levels around) is replaced by the clip's own `FALLBACK_QUANTILE` (95th percentile) of finite frame
    scores; then the levels only rank the clip's frames against each other and a normal clip gets
    proposals too. When even that is not above 0 (a lane of negative scores), the ratios measure down from
    it instead: on = q - (on_ratio - 1) x |q|, so the order of the levels still holds.
    """
    if off_ratio > on_ratio:
        raise LabelError(
            f"the off ratio ({off_ratio}) must not be above the on ratio ({on_ratio}): a proposal "
            "ends at a level at or below the one that starts it"
        )
    reference = frame_threshold
    if reference is None or not math.isfinite(reference) or reference <= 0:
        scores = np.asarray(frame_scores, dtype=np.float64)
        finite = scores[np.isfinite(scores)]
        if finite.size == 0:
            raise LabelError(
                "the lane has no finite frame scores and the model no frame threshold; score the clip again"
            )
        reference = float(np.quantile(finite, FALLBACK_QUANTILE))
    if reference > 0:
        on, off = on_ratio * reference, off_ratio * reference
    else:
        on, off = reference + (on_ratio - 1) * abs(reference), reference + (off_ratio - 1) * abs(reference)
    return ProposalSettings(on=on, off=off, min_duration_s=min_duration_s, merge_gap_s=merge_gap_s)


# -- in a project ------------------------------------------------------------------------------------------
#: The label of a proposal from an anomaly detector: what it found (an anomaly), not one of the user's classes.
#: Accepting such a proposal gives it the class the user chooses.
ANOMALY_FINDING = "anomaly"


def _record(models: dict[int, results.ModelRecord], detector: str, model_id: int) -> results.ModelRecord:
    if model_id not in models:
        raise LabelError(f"the {detector} model {model_id} that scored the clip is gone; score the clip again")
    return models[model_id]


def clip_proposals(
    project: Project,
    clip_id: str,
    score: results.ClipScore,
    detector: str,
    on_ratio: float = 1.0,
    off_ratio: float = DEFAULT_OFF_RATIO,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
    label: str | None = None,
    models: dict[int, results.ModelRecord] | None = None,
    duration_s: float | None = None,
) -> list[Region]:
    """The proposals of one clip's stored score (`results.clip_scores`) as regions, without writing them;
    `label` defaults to `ANOMALY_FINDING` (a classifier's callers pass its finding:
    `engine.detectors.registry.finding_label`). `models` (the detector's records by id) and the
    clip's `duration_s` are read from the project unless given (a caller going over many clips reads them
    once)."""
    label = label or ANOMALY_FINDING
    if not score.map_artifact:
        raise LabelError(f"{clip_id} has no frame scores from {detector}; score it again")
    lanes = results.load_lanes(project, score.map_artifact)
    times, values = lanes.frame_times, lanes.frame_scores
    models = models if models is not None else {m.model_id: m for m in results.models(project, detector)}
    threshold = results.frame_threshold(project, _record(models, detector, score.model_id))
    duration_s = duration_s if duration_s is not None else project.clip(clip_id).duration_s
    return lane_proposals(
        clip_id,
        duration_s,
        times,
        values,
        threshold,
        score.model_id,
        label,
        on_ratio,
        off_ratio,
        min_duration_s,
        merge_gap_s,
    )


def lane_proposals(
    clip_id: str,
    duration_s: float,
    frame_times,
    frame_scores,
    frame_threshold: float | None,
    model_id: int | None,
    label: str,
    on_ratio: float = 1.0,
    off_ratio: float = DEFAULT_OFF_RATIO,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
) -> list[Region]:
    """One lane's proposals as regions of its clip (ends kept inside the clip), for a lane already in
    memory: the window re-proposes the shown clip this way on every slider move."""
    settings = settings_for(frame_threshold, frame_scores, on_ratio, off_ratio, min_duration_s, merge_gap_s)
    regions = []
    for p in propose(frame_times, frame_scores, settings):
        end = min(p.end_s, duration_s) if duration_s else p.end_s  # the last frame's stretch may pass the end
        if end > p.start_s:
            regions.append(
                Region(clip_id, p.start_s, end, label, kind="proposal", model_id=model_id, confidence=p.confidence)
            )
    return regions


def propose_clip(
    project: Project,
    clip_id: str,
    detector: str,
    on_ratio: float = 1.0,
    off_ratio: float = DEFAULT_OFF_RATIO,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
    label: str | None = None,
) -> list[Region]:
    """Propose regions on one clip from its newest `detector` score and store them (replacing that model's
    earlier proposals on the clip; manual and truth regions stay). `label` defaults to `ANOMALY_FINDING` (see
    `clip_proposals`). Returns the regions as stored."""
    score = results.clip_scores(project, clip_id).get(clip_id, {}).get(detector)
    if score is None:
        raise LabelError(f"{clip_id} has no {detector} score; score it with {detector} first")
    found = clip_proposals(project, clip_id, score, detector, on_ratio, off_ratio, min_duration_s, merge_gap_s, label)
    return labels.replace_proposals(project, clip_id, score.model_id, found)


def propose_all(
    project: Project,
    detector: str,
    progress: Progress | None = None,
    clip_ids: Iterable[str] | None = None,
    on_ratio: float = 1.0,
    off_ratio: float = DEFAULT_OFF_RATIO,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
    label: str | None = None,
    store: bool = True,
    on_clip: Callable[[str, list[Region]], None] | None = None,
) -> int:
    """Propose regions on every clip `detector` scored (or on `clip_ids`); returns how many were written.

    Each clip is one transaction, so a cancelled run (`progress.check()` raises `Cancelled`) keeps the
    proposals of the clips it finished. Clips without a score of `detector` are reported through
    `progress.problem` and skipped. `on_clip(clip_id, regions)` hears each clip's regions as stored; with
    `store=False` nothing is written and it hears them as found (labelled stretches not yet cut out).
    """
    progress = progress or Progress()
    settings_for(1.0, [], on_ratio, off_ratio, min_duration_s, merge_gap_s)  # bad ratios fail before any work
    label = label or ANOMALY_FINDING
    scores = results.clip_scores(project)
    if clip_ids is None:
        todo = [c for c, by_detector in scores.items() if detector in by_detector]
        if not todo:
            raise LabelError(f"no clip has a {detector} score; score clips with {detector} first")
    else:
        todo = list(dict.fromkeys(clip_ids))
    models = {m.model_id: m for m in results.models(project, detector)}
    durations = {c.clip_id: c.duration_s for c in project.clips()}
    written = 0
    progress.update(0, len(todo), f"proposing regions from {detector}")
    for index, clip_id in enumerate(todo):
        progress.check()
        score = scores.get(clip_id, {}).get(detector)
        if score is None:
            progress.problem(f"{clip_id}: no {detector} score, no proposals")
        else:
            try:
                found = clip_proposals(
                    project,
                    clip_id,
                    score,
                    detector,
                    on_ratio,
                    off_ratio,
                    min_duration_s,
                    merge_gap_s,
                    label,
                    models,
                    durations.get(clip_id),
                )
            except (LabelError, ArtifactError, OSError, KeyError, ValueError) as exc:
                progress.problem(f"{clip_id}: {exc}")
            else:
                kept = labels.replace_proposals(project, clip_id, score.model_id, found) if store else found
                written += len(kept)
                if on_clip is not None:
                    on_clip(clip_id, kept)
        progress.update(index + 1, len(todo), clip_id)
    return written
