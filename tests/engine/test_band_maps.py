"""Maps of the detectors that split a frame score over mel bands (`dcase_ae`, `knn` on log-mel frames): a
whine in a normal hum lights the cell of its pitch and time, in the units of the frame lane; the grid tiles
the clip; a stored map stays small."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.feature_cache import FeatureCache
from engine.audio.features import LogMelConfig
from engine.data.clip import Clip
from engine.detectors.band_maps import band_map, pool_rows
from engine.detectors.registry import detector_class, make_config
from tests.helpers import write_wav

RATE = 16000


def _clip(tmp_path, name, audio, split="train") -> Clip:
    path = write_wav(tmp_path / f"{name}.wav", audio)
    return Clip(name, str(path), RATE, len(audio) / RATE, "pump", "00", "source", split, "normal")


def _hum(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


#: One network (no cross-fitted ones) trained long enough on six short clips to reconstruct a hum.
QUICK_AE = {"epochs": 30, "batch_size": 32, "cross_fit_below": 1}


@pytest.mark.parametrize(
    "key,settings",
    [("dcase_ae", {**QUICK_AE, "mode": "mse"}), ("dcase_ae", {**QUICK_AE, "mode": "mahalanobis"}), ("knn", {})],
)
def test_the_map_lights_the_pitch_and_time_of_a_whine_in_the_units_of_the_lane(key, settings, tmp_path):
    normals = [_clip(tmp_path, f"normal{i}", _hum(4.0, i)) for i in range(6)]
    query = _hum(4.0, 9)
    t = np.arange(int(0.4 * RATE)) / RATE
    start = int(2.5 * RATE)
    query[start : start + len(t)] += 0.3 * np.sin(2 * np.pi * 3000 * t)  # a 3 kHz whine from 2.5 to 2.9 s
    detector = detector_class(key)(make_config(key, settings), cache=FeatureCache(None))
    detector.fit(normals)
    [detection] = detector.score([_clip(tmp_path, "whine", query, split="test")])
    grid = detection.anomaly_map
    assert grid.shape == (32, len(detection.frame_times)), "128 mel bands pooled to 32 rows, a column a frame"
    row, column = np.unravel_index(np.argmax(grid), grid.shape)
    freq = detection.map_freq_spans_hz
    pitch_row = int(np.flatnonzero((freq[:, 0] <= 3000) & (3000 < freq[:, 1]))[0])
    begin, end = detection.map_time_spans_s[column]
    # mel filters overlap their neighbours: a pitch near a row's edge lights the row beside it as much
    assert abs(row - pitch_row) <= 1, "the brightest cell is at the whine's pitch"
    assert begin < 2.9 and end > 2.5, "and its time"
    assert grid.min() >= 0, "every band's share of the score is a part of it, never below 0"
    np.testing.assert_allclose(grid.mean(axis=0), detection.frame_scores, rtol=1e-4)
    assert grid[row, column] > detector.frame_threshold, "the whine's cell stands above the frame threshold"


def test_the_grid_tiles_the_clip_and_a_column_mean_survives_pooling():
    features = LogMelConfig()
    rng = np.random.default_rng(0)
    shares = rng.gamma(2.0, size=(313, 128))  # a 10 s clip: 313 frames of 128 bands
    times = features.frame_times(313)
    found = band_map(shares, features, times, duration_s=10.0)
    assert found.values.shape == (32, 313) and found.values.dtype == np.float32
    np.testing.assert_allclose(found.values.mean(axis=0), shares.mean(axis=1), rtol=1e-5)
    spans = found.time_spans_s
    assert spans[0, 0] == 0.0 and spans[-1, 1] == 10.0, "the columns reach both ends of the clip"
    np.testing.assert_allclose(spans[1:, 0], spans[:-1, 1], err_msg="and neither overlap nor leave gaps")
    assert np.all((spans[:, 0] <= times) & (times <= spans[:, 1])), "each holds its frame's centre"
    freq = found.freq_spans_hz
    assert freq[0, 0] == 0.0 and freq[-1, 1] == pytest.approx(8000.0)
    np.testing.assert_allclose(freq[1:, 0], freq[:-1, 1])
    # A 10 s clip's stored map: about 40 KB.
    assert found.values.nbytes <= 41_000
    # Rows that do not divide evenly are grouped by the largest size that does, so no column's mean changes.
    values = rng.gamma(2.0, size=(100, 3))
    pooled, group = pool_rows(values)
    assert (pooled.shape, group) == ((50, 3), 2)
    np.testing.assert_allclose(pooled.mean(axis=0), values.mean(axis=0), rtol=1e-5)
