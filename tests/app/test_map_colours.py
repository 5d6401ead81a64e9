"""The colours of an anomaly map over the spectrogram: a normal clip stays mostly transparent, the cells of a
slightly anomalous clip that pass the threshold stand out, and a clip far above the threshold everywhere is
still readable (its strongest cells differ from its weakest) with the threshold on the colour scale."""

from __future__ import annotations

import numpy as np

from app.views.overlays import colour_bar_ticks, map_colour_map, map_levels
from engine.data.detection import Detection

THRESHOLD = 4.0


def lanes_with(anomaly_map: np.ndarray) -> Detection:
    frames = anomaly_map.shape[1]
    return Detection(
        "clip",
        float(anomaly_map.max()),
        bool(anomaly_map.max() > THRESHOLD),
        anomaly_map.max(axis=0),
        np.arange(frames, dtype=np.float64),
        anomaly_map,
        frame_threshold=THRESHOLD,
    )


def opacity(values: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """How opaque each cell is drawn (0 transparent to 1), as the colour map draws it at these levels."""
    low, high = levels
    positions = np.clip((values - low) / (high - low), 0.0, 1.0)
    return map_colour_map("inferno").map(positions.ravel(), mode="float")[:, 3].reshape(values.shape)


def background(rng: np.random.Generator, shape=(16, 40)) -> np.ndarray:
    """A normal clip's map: most cells well under the threshold, a few up to it (as a detector's maps of
    unseen normal clips are)."""
    return THRESHOLD * np.clip(rng.normal(0.0, 0.3, shape), -0.4, 0.95)


def test_a_normal_clip_is_drawn_on_one_scale_for_every_such_clip_and_stays_mostly_transparent():
    rng = np.random.default_rng(0)
    normal, another = background(rng), 0.5 * background(rng)
    levels = map_levels(lanes_with(normal))
    assert levels == map_levels(lanes_with(another))  # the same scale for every clip under the threshold
    assert levels[0] < THRESHOLD < levels[1]  # with the threshold on it
    seen = opacity(normal, levels)
    assert (seen < 0.5).mean() > 0.95 and seen.mean() < 0.15
    # A cell at the threshold is seen, but fainter than what passes it.
    at, past = opacity(np.array([THRESHOLD, 1.5 * THRESHOLD]), levels)
    assert 0.2 < at < 0.8 and past > 0.95


def test_a_slightly_anomalous_clip_shows_its_cells_above_threshold_and_not_the_rest():
    rng = np.random.default_rng(1)
    clip = background(rng)
    clip[5:9, 20:26] = THRESHOLD * rng.uniform(1.3, 1.6, (4, 6))  # a short event in a few bands
    low, high = map_levels(lanes_with(clip))
    assert low < THRESHOLD < high <= clip.max()
    seen = opacity(clip, (low, high))
    assert seen[5:9, 20:26].min() > 0.8
    rest = np.ones(clip.shape, bool)
    rest[5:9, 20:26] = False
    assert (seen[rest] < 0.5).mean() > 0.9


def test_a_clip_far_above_threshold_everywhere_keeps_its_strongest_cells_apart_from_its_weakest():
    rng = np.random.default_rng(2)
    clip = THRESHOLD * rng.uniform(5.0, 6.0, (16, 40))  # a stationary fault: the whole clip far above
    clip[2:6, :] = THRESHOLD * rng.uniform(9.0, 10.0, (4, 40))  # and some bands much more so
    low, high = map_levels(lanes_with(clip))
    assert low < THRESHOLD < high  # the threshold is on the colour scale
    # With the old scale (0 to the threshold) every cell was the same saturated colour.
    assert np.ptp(np.clip(clip / THRESHOLD, 0, 1)) == 0
    positions = (clip - low) / (high - low)
    assert positions[2:6].min() - positions[6:].max() > 0.25
    seen = opacity(clip, (low, high))
    assert seen[2:6].mean() > 0.9 and seen[6:].mean() < 0.75


def test_the_colour_bar_labels_the_threshold_and_round_values_away_from_it():
    ticks = colour_bar_ticks(3.6, 40.0, THRESHOLD)
    assert (THRESHOLD, "thr") in ticks
    values = [value for value, _ in ticks]
    assert values == sorted(values) and all(3.6 <= v <= 40.0 for v in values) and len(values) >= 3
    assert all(abs(v - THRESHOLD) > 0.15 * (40.0 - 3.6) for v, text in ticks if text != "thr")
    assert all(text != "thr" for _, text in colour_bar_ticks(0.0, 1.0, None))
