"""A clip's anomaly map from its segments' patch maps: segments overlap by half, so each frame takes the mean
of the patch columns that cover it, and the map's columns are blocks of as many frames as a patch column
spans (8 at the defaults), placed on the clip's own time axis."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def clip_map(
    maps: Sequence[np.ndarray],
    spans_s: np.ndarray,
    frames: int,
    frame_s: float,
    segment_frames: int,
    duration_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(map [R, B], column spans [B, 2] in seconds) of a clip of `frames` frames from its segments' maps
    (each [R, Tc], the segment starting at `spans_s[s, 0]`)."""
    rows, columns = maps[0].shape
    width = segment_frames / columns
    total, count = np.zeros((rows, frames)), np.zeros(frames)
    for values, span in zip(maps, spans_s, strict=True):
        first = int(round(span[0] / frame_s))
        for j in range(columns):
            start = min(first + int(round(j * width)), frames)
            end = min(first + int(round((j + 1) * width)), frames)
            total[:, start:end] += values[:, j : j + 1]
            count[start:end] += 1
    per_frame = total / np.maximum(count, 1)
    block = max(1, int(round(width)))
    found, spans = [], []
    for index in range(math.ceil(frames / block)):
        start, end = index * block, min((index + 1) * block, frames)
        begins, ends = start * frame_s, min(end * frame_s, duration_s)
        if begins >= ends:  # a last frame that starts where the audio ends
            break
        found.append(per_frame[:, start:end].mean(axis=1))
        spans.append((begins, ends))
    return np.ascontiguousarray(np.stack(found, axis=1), dtype=np.float32), np.array(spans, dtype=np.float64)
