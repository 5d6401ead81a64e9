"""The review queue: where N (next) and Shift+N (previous) go. Stops follow the clip table's order (its
sort and filter, as the user sees it) and, inside a clip, time. Three queues: pending proposals (every
proposal region of the project), clips the viewed detector flags as anomalous, and clips without any
manual label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.store import Project, labels, results


@dataclass(frozen=True)
class Stop:
    clip_id: str
    region_id: int | None = None


def next_stop(
    project: Project,
    order: Sequence[str],
    mode: str,
    current_clip: str | None,
    current_region: int | None,
    step: int = 1,
    detector: str | None = None,
) -> Stop | None:
    """The stop after (step=1) or before (step=-1) the current clip and region, or None at the end."""
    stops = _stops(project, order, mode, detector)
    if not stops:
        return None
    position = {clip_id: i for i, clip_id in enumerate(order)}
    here = (position.get(current_clip, -1), *_region_place(project, current_region, mode))
    keys = [(position[s.clip_id], start, s.region_id if s.region_id is not None else -1) for s, start in stops]
    if step > 0:
        ahead = [stop for (stop, _), key in zip(stops, keys, strict=True) if key > here]
        return ahead[0] if ahead else None
    behind = [stop for (stop, _), key in zip(stops, keys, strict=True) if key < here]
    return behind[-1] if behind else None


def _stops(
    project: Project,
    order: Sequence[str],
    mode: str,
    detector: str | None,
) -> list[tuple[Stop, float]]:
    shown = set(order)
    rank = {clip_id: i for i, clip_id in enumerate(order)}
    if mode == "proposals":
        pending = [r for r in labels.regions(project, kinds=("proposal",)) if r.clip_id in shown]
        pending.sort(key=lambda r: (rank[r.clip_id], r.start_s, r.region_id))
        return [(Stop(r.clip_id, r.region_id), r.start_s) for r in pending]
    if mode == "flagged":
        scores = results.clip_scores(project)
        flagged = [c for c in order if detector and detector in scores.get(c, {}) and scores[c][detector].decision]
        return [(Stop(c), -1.0) for c in flagged]
    if mode == "unlabelled":
        labelled = {r.clip_id for r in labels.regions(project, kinds=("manual",))}
        return [(Stop(c), -1.0) for c in order if c not in labelled]
    raise ValueError(f"no review queue {mode!r}")


def _region_place(project: Project, region_id: int | None, mode: str) -> tuple[float, int]:
    """Where in its clip the user is, as (start, id): the selected proposal itself; just before a selected
    label (an accepted proposal: the next one is the one after it); or before the clip's first stop."""
    if mode != "proposals" or region_id is None:
        return -1.0, -1
    try:
        region = labels.region(project, region_id)
    except labels.LabelError:
        return -1.0, -1
    return (region.start_s, region_id) if region.kind == "proposal" else (region.start_s, -1)
