"""A clip as the trained encoder sees it: its embedding for the k-NN back-end (the segments' embeddings, each
of unit length, averaged and brought to unit length again) and its per-patch embeddings on one time x
frequency grid for the frame lane and the anomaly map.

Segments overlap by half, so their feature maps' columns do too: the grid takes every column of the first
segment and, from each next one, the columns that end past where the grid so far ends, so the columns tile the
clip in order. The last segment ends at the clip's end: its first columns repeat time the grid already has
and are left out, and a column that starts inside the grid and ends past it keeps only its new time, so the
last column reaches the clip's end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.data.clip import Clip
from engine.detectors.attr_classifier.model import AttributeNet
from engine.detectors.metadata.segments import ClipSegments, column_spans_s
from engine.device import autocast


@dataclass
class ClipView:
    """One clip: its embedding [D] (unit length), its segments' embeddings [S, D] (unit length), its patch
    embeddings [F, T, C] (each of unit length) with each column's (start, end) seconds [T, 2] and each row's
    (low, high) Hz [F, 2]."""

    embedding: torch.Tensor
    segments: torch.Tensor
    patches: torch.Tensor
    time_spans_s: np.ndarray
    freq_spans_hz: np.ndarray


def _run(model: AttributeNet, segments: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(segment embeddings [S, D], feature maps [S, F, T, C]), both of unit length, on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    embeddings, maps = [], []
    with torch.inference_mode():
        for start in range(0, len(segments), batch):
            with autocast(device):
                fmap = model.encoder.feature_map(segments[start : start + batch].to(device))
                embedding = model.encoder.pool(fmap)
            embeddings.append(nn.functional.normalize(embedding.float(), dim=1).cpu())
            maps.append(nn.functional.normalize(fmap.float(), dim=1).permute(0, 2, 3, 1).cpu())
    return torch.cat(embeddings), torch.cat(maps)


def clip_views(
    model: AttributeNet,
    clips: Sequence[Clip],
    segments: dict[str, ClipSegments],
    row_spans_hz: Callable[[int], np.ndarray],
    batch: int,
) -> dict[str, ClipView]:
    """clip_id -> `ClipView` for each clip in `segments`; every clip's segments run through the encoder in
    batches. `row_spans_hz(rows)` gives the (low, high) Hz of the feature map's rows."""
    clips = [c for c in clips if c.clip_id in segments]
    if not clips:
        return {}
    embeddings, maps = _run(model, torch.cat([segments[c.clip_id].segments for c in clips]), batch)
    rows = row_spans_hz(maps.shape[1])
    views, first = {}, 0
    for clip in clips:
        found = segments[clip.clip_id]
        last = first + len(found.segments)
        embedding = nn.functional.normalize(embeddings[first:last].mean(dim=0), dim=0)
        columns, spans = _stitched(maps[first:last], found)
        end = clip.duration_s if clip.duration_s else float(spans[-1, 1])
        inside = spans[:, 0] < end - 1e-6
        inside[0] = True
        spans = spans[inside]
        spans[:, 1] = np.minimum(spans[:, 1], end)
        spans[-1, 1] = end  # the features' last frame may end a little short of the clip's end
        views[clip.clip_id] = ClipView(
            embedding, embeddings[first:last], columns[:, torch.from_numpy(inside)], spans, rows
        )
        first = last
    return views


def _stitched(maps: torch.Tensor, found: ClipSegments) -> tuple[torch.Tensor, np.ndarray]:
    """The segments' feature maps [S, F, T, C] as one grid [F, T', C] of columns in time order, and their
    spans [T', 2]. Columns that start past the clip's last frame (a short clip repeated to fill a segment, a
    window's padding) are left out."""
    kept, spans, end = [], [], -np.inf
    for index, span in enumerate(found.time_spans_s):
        for column, (start, stop) in enumerate(column_spans_s(np.asarray(span), maps.shape[2], found.end_s)):
            if stop > end + 1e-9:
                kept.append(maps[index, :, column])
                spans.append((max(start, end), stop))
                end = stop
    return torch.stack(kept, dim=1), np.asarray(spans, dtype=np.float64)
