"""Held-out scores from a single training clip: with nothing to hold out, the threshold must still come from
scores of what the model did not compare with itself. The clip is cut into stretches of one segment's
columns, and each stretch is scored against the clip's other columns (its own left out in turn): a patch never
meets itself, which would score 0 and flag every unseen normal clip. A clip of one segment has only its
columns, each scored against the others; with `score=embedding`, each segment's embedding is scored against
the mean of the segments it does not overlap.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.detectors.attr_classifier.embedding import ClipView
from engine.detectors.attr_classifier.memory import nearest_map
from engine.detectors.knn.bank import knn_distance
from engine.detectors.metadata.segments import ClipSegments
from engine.errors import EarmarkError
from engine.jobs import Progress


def one_clip_held_out(
    clip_id: str, view: ClipView, found: ClipSegments, score: str, metric: str, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """(held-out scores, held-out frame scores) of the one training clip `clip_id` (its `view` and segments),
    for the clip score `score` (patches | embedding)."""
    maps = _left_out_maps(clip_id, view, found, progress)
    frames = np.concatenate([grid.mean(axis=0) for grid in maps])
    if score == "patches":
        return np.array([float(grid.mean()) for grid in maps]), frames
    return _left_out_embeddings(clip_id, view, found, metric), frames


def _left_out_maps(clip_id: str, view: ClipView, found: ClipSegments, progress: Progress) -> list[np.ndarray]:
    """Each stretch's map [F, w] against the clip's columns outside it (w: one segment's columns; one column
    where the clip has no more than one segment's)."""
    grid, columns = view.patches, view.patches.shape[1]
    segment_s = float(found.time_spans_s[0, 1] - found.time_spans_s[0, 0])
    column_s = float(view.time_spans_s[0, 1] - view.time_spans_s[0, 0])
    width = max(1, round(segment_s / column_s))
    if columns < 2:
        raise EarmarkError(
            f"attr_classifier: {clip_id} is the only training clip and too short to learn a threshold from "
            "(one column of the encoder's grid); fit on more or longer normal clips"
        )
    if columns <= width:
        progress.problem(
            f"{clip_id}: the only training clip is one segment long: its threshold comes from each of its "
            f"{columns} columns scored against its other columns and is shaky; fit on more or longer normal clips"
        )
        width = 1
    maps = []
    for start in range(0, columns, width):
        others = torch.cat([grid[:, :start], grid[:, start + width :]], dim=1)
        maps.append(nearest_map(grid[:, start : start + width], others.float().cpu()))
    return maps


def _left_out_embeddings(clip_id: str, view: ClipView, found: ClipSegments, metric: str) -> np.ndarray:
    """Each segment's embedding against the mean (unit length) of the segments it does not overlap."""
    spans, scores = found.time_spans_s, []
    for index, (start, end) in enumerate(spans):
        apart = (spans[:, 1] <= start + 1e-9) | (spans[:, 0] >= end - 1e-9)
        if apart.any():
            rest = nn.functional.normalize(view.segments[torch.from_numpy(apart)].mean(dim=0), dim=0)
            scores.append(float(knn_distance(view.segments[index : index + 1], rest[None], 1, metric)[0]))
    if not scores:
        raise EarmarkError(
            f"attr_classifier: {clip_id} is the only training clip and too short for score=embedding to learn a "
            "threshold (no two of its segments apart); fit on more or longer normal clips, or use score=patches"
        )
    return np.array(scores)
