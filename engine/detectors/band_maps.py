"""Anomaly maps on a mel band x frame grid, for detectors whose frame score adds up over mel bands.

A detector that can split each frame score into one share per mel band (a squared reconstruction error per
band, a band's part of a k-NN distance) gives a map [bands, frames] whose column mean is the frame score:
the map is in the units of the frame lane, so the model's frame threshold colours it. Stored maps are kept
small by averaging groups of neighbouring bands (which keeps every column's mean) to about `MAP_ROWS` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.audio.features import LogMelConfig

#: About this many rows in a stored map: a 10 s clip's map at 512-sample hops stays about 40 KB.
MAP_ROWS = 32


@dataclass
class BandMap:
    """A map [F, T] with each row's (low, high) Hz and each column's (start, end) seconds."""

    values: np.ndarray
    freq_spans_hz: np.ndarray
    time_spans_s: np.ndarray


def map_fields(found: BandMap | None) -> dict[str, np.ndarray | None]:
    """A `Detection`'s map arguments (anomaly_map and its grid) from a map, or None for each without one."""
    if found is None:
        return {"anomaly_map": None, "map_freq_spans_hz": None, "map_time_spans_s": None}
    return {
        "anomaly_map": found.values,
        "map_freq_spans_hz": found.freq_spans_hz,
        "map_time_spans_s": found.time_spans_s,
    }


def band_map(
    shares: np.ndarray,
    features: LogMelConfig,
    times: np.ndarray,
    duration_s: float | None,
    bands_per_share: int = 1,
    rows: int = MAP_ROWS,
) -> BandMap:
    """The map from per-frame band shares [T, S] (share s covers `bands_per_share` neighbouring mel bands of
    `features`, lowest first), their frame centres `times` [T] (one hop apart), pooled to about `rows` rows."""
    values, group = pool_rows(np.asarray(shares, dtype=np.float32).T, rows)
    edges = features.band_edges_hz()
    first = np.arange(len(values)) * group * bands_per_share
    freq = np.stack([edges[first], edges[first + group * bands_per_share]], axis=1)
    return BandMap(values, freq, frame_spans(times, features.hop_length / features.sample_rate, duration_s))


def pool_rows(values: np.ndarray, rows: int = MAP_ROWS) -> tuple[np.ndarray, int]:
    """[F, T] -> [F / g, T], each row the mean of g neighbouring rows, and g: the largest group size up to
    F / rows that divides F, so every group is the same size and each column's mean is kept exactly."""
    count = len(values)
    group = max(1, count // max(1, rows))
    while count % group:
        group -= 1
    pooled = values.reshape(count // group, group, -1).mean(axis=1)
    return np.ascontiguousarray(pooled, dtype=np.float32), group


def frame_spans(times: np.ndarray, hop_s: float, duration_s: float | None) -> np.ndarray:
    """[T, 2] float32 time spans that tile the clip: each frame's centre +- half a hop, held inside 0..duration."""
    times = np.asarray(times, dtype=np.float64)
    spans = np.stack([times - hop_s / 2, times + hop_s / 2], axis=1)
    if duration_s is not None and len(times):  # a last frame centred on the clip's end reaches half a hop past it
        spans = np.clip(spans, 0.0, max(duration_s, float(times[-1])))
    # float32 keeps a stored map's grid small and still resolves 0.25 ms an hour into a recording
    return np.maximum(spans, 0.0).astype(np.float32)
