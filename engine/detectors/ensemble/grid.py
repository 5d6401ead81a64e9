"""Several detectors' frame lanes and anomaly maps put on one grid and fused, for the `ensemble` detector.

Members score on grids of their own (an auto-encoder's frame every 32 ms over 128 mel bands, a patch memory's
patch every 0.32 s over 16-band patches), so their lanes and maps are resampled first: time onto the finest
member lane's times (or a fixed step), frequency onto a fixed set of mel-spaced bands from 0 Hz to the top of
the members' maps. Values stay as given (the caller normalises them first); fusion ignores a member that has
no value at a point.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from engine.audio.display import hz_to_mel, mel_to_hz

FUSIONS = ("mean", "min", "max")


def fuse(stack: np.ndarray, fusion: str, weights: Sequence[float] | None = None) -> np.ndarray:
    """The members' values (axis 0) fused: their mean (weighted by `weights`, one per member, where given),
    minimum or maximum, over the members with a finite value at each point; NaN where none has one."""
    stack = np.asarray(stack, dtype=np.float64)
    finite = np.isfinite(stack)
    if fusion == "mean" and weights is not None:
        w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (stack.ndim - 1)) * finite
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(finite, stack, 0.0).__mul__(w).sum(axis=0) / w.sum(axis=0)
    stack = np.where(finite, stack, np.nan)
    with warnings.catch_warnings():  # a point no member has a value at is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}[fusion](stack, axis=0)


def common_times(lanes: Sequence[np.ndarray], step_s: float = 0.0) -> np.ndarray:
    """The fused lane's times: those of the member lane with the smallest median step or, with `step_s` > 0,
    every `step_s` seconds over the span the lanes cover."""
    lanes = [np.asarray(t, dtype=np.float64) for t in lanes if len(t)]
    if not lanes:
        return np.zeros(0)
    if step_s > 0:
        start = min(float(t[0]) for t in lanes)
        end = max(float(t[-1]) for t in lanes)
        return start + step_s * np.arange(int(np.floor((end - start) / step_s + 1e-9)) + 1)
    return min(lanes, key=lambda t: float(np.median(np.diff(t))) if len(t) > 1 else np.inf).copy()


def lane_on(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A lane's values at the `grid` times, linearly interpolated (held at its ends); NaN where it has no
    finite value at all."""
    times, values = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.full(len(grid), np.nan)
    return np.interp(grid, times[finite], values[finite])


def time_spans(times: np.ndarray, end_s: float = np.inf) -> np.ndarray:
    """[T, 2] (start, end) of each grid column: half-way to its neighbours, the ends half a step out (within
    0 and `end_s`, the end of the members' maps, so no column reaches past the clip)."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 1:
        return np.array([[max(0.0, times[0] - 0.05), max(min(times[0] + 0.05, end_s), times[0] + 1e-6)]])
    middles = (times[1:] + times[:-1]) / 2
    starts = np.concatenate([[max(0.0, times[0] - (middles[0] - times[0]))], middles])
    last = min(times[-1] + (times[-1] - middles[-1]), end_s)
    ends = np.concatenate([middles, [max(last, (middles[-1] + times[-1]) / 2)]])
    return np.stack([starts, ends], axis=1)


def mel_bands(top_hz: float, bands: int) -> np.ndarray:
    """[bands, 2] (low, high) Hz of `bands` bands evenly spaced in mel from 0 Hz to `top_hz`."""
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(float(top_hz)), bands + 1))
    return np.stack([edges[:-1], edges[1:]], axis=1)


def map_on(
    anomaly_map: np.ndarray, freq_spans_hz: np.ndarray, time_spans_s: np.ndarray, bands: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """A map [F, Tm] on its own grid resampled to [len(bands), len(times)]: each cell takes the value of the
    member cell whose centre is nearest (in mel for frequency, in seconds for time)."""
    member_rows = hz_to_mel(np.asarray(freq_spans_hz, dtype=np.float64).mean(axis=1))
    rows = np.abs(hz_to_mel(bands.mean(axis=1))[:, None] - member_rows[None]).argmin(axis=1)
    member_columns = np.asarray(time_spans_s, dtype=np.float64).mean(axis=1)
    columns = np.abs(np.asarray(times, dtype=np.float64)[:, None] - member_columns[None]).argmin(axis=1)
    return np.asarray(anomaly_map, dtype=np.float64)[np.ix_(rows, columns)]
