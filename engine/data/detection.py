"""`Detection`: what every detector says about one clip, the one result type of the engine and the window.

A record beside `Clip`, below the detectors (`engine.detectors.base` re-exports it) and the store, so the
store can write and read it and the window can read stored detections before torch is loaded. It owns the
names of the arrays a stored detection keeps (`to_arrays` / `from_arrays`): the lanes files of
`engine.store.results` are written and read only through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class Detection:
    """What every detector says about one clip. Higher scores are more anomalous.

    `frame_scores` [T] at `frame_times` [T] seconds; `anomaly_map` [F, Tm] or None, each row spanning
    `map_freq_spans_hz[f]` (low, high) and each column `map_time_spans_s[t]` (start, end); `regions` are
    proposed anomalous stretches (start_s, end_s, peak frame score). `normalised` is the score against the
    model's held-out training-normal scores of the clip's domain (NaN for a model without them).
    """

    clip_id: str
    score: float
    decision: bool
    frame_scores: np.ndarray
    frame_times: np.ndarray
    anomaly_map: np.ndarray | None = None
    map_freq_spans_hz: np.ndarray | None = None
    map_time_spans_s: np.ndarray | None = None
    regions: list[tuple[float, float, float]] = field(default_factory=list)
    normalised: float = float("nan")
    #: The thresholds that decided it (on the clip score and on frame scores), and the stored model it came
    #: from where it was read from a project; None where not known.
    threshold: float | None = None
    frame_threshold: float | None = None
    model_id: int | None = None

    #: The arrays a stored detection keeps (`engine.store.results.save_lanes`); the map's three only where
    #: there is a map. Every reader and writer of lanes files goes through `to_arrays` / `from_arrays`.
    MAP_KEYS: ClassVar[tuple[str, ...]] = ("anomaly_map", "map_freq_spans_hz", "map_time_spans_s")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The frame lane, the proposed regions ([R, 3]: start_s, end_s, peak) and the map, as named arrays."""
        arrays = {
            "frame_scores": np.asarray(self.frame_scores),
            "frame_times": np.asarray(self.frame_times),
            "regions": np.asarray(self.regions, dtype=np.float64).reshape(-1, 3),
        }
        if self.anomaly_map is not None:
            arrays.update(
                zip(self.MAP_KEYS, (self.anomaly_map, self.map_freq_spans_hz, self.map_time_spans_s), strict=True)
            )
        return arrays

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        clip_id: str = "",
        score: float = float("nan"),
        decision: bool = False,
        **fields: Any,
    ) -> Detection:
        """A detection from `to_arrays`' arrays (a missing lane is empty; a missing map is None) and the
        scalar fields stored beside them (score, decision, normalised, thresholds, model_id)."""
        has_map = all(key in arrays for key in cls.MAP_KEYS)
        regions = np.asarray(arrays.get("regions", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
        return cls(
            clip_id,
            float(score),
            bool(decision),
            np.asarray(arrays.get("frame_scores", np.zeros(0))),
            np.asarray(arrays.get("frame_times", np.zeros(0))),
            *((arrays[key] for key in cls.MAP_KEYS) if has_map else (None, None, None)),
            regions=[(float(a), float(b), float(c)) for a, b, c in regions],
            **fields,
        )
