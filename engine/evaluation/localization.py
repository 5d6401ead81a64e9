"""How well a detector's frame scores point at the anomaly, where the truth regions are known.

Two figures per detector, over the anomalous clips that carry `anomaly_regions`:
- **frame AUROC**: the AUROC of frame scores against the region mask, pooled over the clips of one model
  group (their scores share one scale), then averaged over groups;
- **top-frame hit rate**: the share of those clips whose highest-scoring frame lies inside a region.
A frame stands for the stretch from halfway to the frame before to halfway to the frame after; it is
positive when that stretch overlaps a region. Coarse lanes (a patch grid every 0.32 s) and fine ones
(a frame every 32 ms) are judged on what each frame covers. Normal clips are left out: this measures
*where*, not *whether*. So are clips whose region covers every frame, such as the synthetic set's stationary
faults (imbalance, a worn bearing, ...) that span the whole clip: with no normal frame inside the clip there is
nothing to locate, and their top frame would be a hit whatever the detector did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.evaluation.metrics import auc


@dataclass(frozen=True)
class LocalizedClip:
    frame_times: np.ndarray
    frame_scores: np.ndarray
    regions: tuple[tuple[float, float], ...]


@dataclass
class LocalizationResult:
    detector: str
    frame_auroc: float
    top_frame_hit_rate: float
    clips: int

    def as_dict(self) -> dict:
        def number(value: float):
            return None if math.isnan(value) else value

        return {
            "detector": self.detector,
            "frame_auroc": number(self.frame_auroc),
            "top_frame_hit_rate": number(self.top_frame_hit_rate),
            "clips": self.clips,
        }


def frame_edges(times: np.ndarray, index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where each frame's stretch starts and ends (of the frames at `index`, or all): halfway to its
    neighbours, and half the median frame step beyond the first and last frame; the frame
    stands for that stretch."""
    n = len(times)
    index = np.arange(n) if index is None else np.asarray(index)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    before, after = np.maximum(index - 1, 0), np.minimum(index + 1, n - 1)
    lows, highs = (times[before] + times[index]) / 2, (times[index] + times[after]) / 2
    if n > 1 and (index[0] == 0 or index[-1] == n - 1):  # the median step only where the ends are asked for
        half = float(np.median(np.diff(times))) / 2
        lows[index == 0] = times[0] - half
        highs[index == n - 1] = times[-1] + half
    return lows, highs


def region_mask(times: np.ndarray, regions: Sequence[tuple[float, float]]) -> np.ndarray:
    """True for each frame whose stretch (halfway to its neighbours) overlaps any region."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=bool)
    lows, highs = frame_edges(times)
    mask = np.zeros(len(times), dtype=bool)
    for start, end in regions:
        mask |= (lows < end) & (highs > start)
    return mask


def localize(detector: str, clips: Sequence[LocalizedClip]) -> LocalizationResult:
    """The two figures over `clips` (anomalous clips with known regions); clips whose region covers every
    frame are skipped and not counted."""
    usable = [c for c in clips if c.regions and len(c.frame_scores)]
    hits = []
    per_clip: list[tuple[np.ndarray, np.ndarray]] = []
    for clip in usable:
        scores = np.asarray(clip.frame_scores, dtype=np.float64)
        mask = region_mask(clip.frame_times, clip.regions)
        finite = np.isfinite(scores)
        if not finite.any() or mask[finite].all():  # no frame, or no normal frame to tell the region from
            continue
        hits.append(bool(mask[np.flatnonzero(finite)[np.argmax(scores[finite])]]))
        per_clip.append((scores[finite], mask[finite]))
    aurocs = [auc(mask, scores) for scores, mask in per_clip if mask.any()]
    return LocalizationResult(
        detector, float(np.mean(aurocs)) if aurocs else math.nan, float(np.mean(hits)) if hits else math.nan, len(hits)
    )


def localize_project(
    project, detectors: Sequence[str] | None = None, split: str = "test", problems: list[str] | None = None
) -> list[LocalizationResult]:
    """Localization figures for each detector with stored frame scores on anomalous clips with regions. A
    clip whose lanes file is missing or damaged is left out and named in `problems`."""
    from engine.errors import ArtifactError
    from engine.store import results

    truth = {c.clip_id: c for c in project.clips(split=split) if c.label == "anomaly" and c.anomaly_regions}
    rows = [r for r in results.latest_scores(project, split=split) if r.clip_id in truth and r.map_artifact]
    names = detectors or sorted({r.detector for r in rows})
    reports = []
    for name in names:
        clips = []
        for row in (r for r in rows if r.detector == name):
            try:
                lanes = results.load_lanes(project, row.map_artifact)
            except ArtifactError as exc:
                if problems is not None:
                    problems.append(
                        f"{name} {row.clip_id}: left out of localization, {exc} (`earmark score "
                        f"{project.folder} --detector {name}`)"
                    )
                continue
            clip = truth[row.clip_id]
            clips.append(LocalizedClip(lanes.frame_times, lanes.frame_scores, clip.anomaly_regions))
        if clips:
            reports.append(localize(name, clips))
    return reports


def format_localization(results: Sequence[LocalizationResult]) -> list[str]:
    if not results:
        return []
    lines = [
        "Localization (anomalous test clips with known regions):",
        f"  {'detector':<14} {'frame AUROC':>11} {'top frame in region':>20} {'clips':>6}",
    ]
    for r in sorted(results, key=lambda r: -1 if math.isnan(r.frame_auroc) else r.frame_auroc, reverse=True):
        auroc = "  -  " if math.isnan(r.frame_auroc) else f"{r.frame_auroc:.3f}"
        hits = "  -  " if math.isnan(r.top_frame_hit_rate) else f"{r.top_frame_hit_rate:.0%}"
        lines.append(f"  {r.detector:<14} {auroc:>11} {hits:>20} {r.clips:>6}")
    return lines
