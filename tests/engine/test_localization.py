"""Localization figures worked by hand: which frames count as inside a region, the per-clip frame AUROC,
and whether the top frame lands in a region."""

from __future__ import annotations

import math

import numpy as np

from engine.evaluation.localization import LocalizedClip, format_localization, localize, region_mask


def test_a_frame_counts_as_inside_when_the_stretch_it_stands_for_overlaps_a_region():
    times = np.array([0.5, 1.5, 2.5, 3.5])  # each frame stands for one second around it
    np.testing.assert_array_equal(region_mask(times, [(2.1, 2.4)]), [False, False, True, False])
    np.testing.assert_array_equal(region_mask(times, [(1.9, 2.1)]), [False, True, True, False])
    np.testing.assert_array_equal(region_mask(times, [(0.0, 0.2), (2.95, 3.05)]), [True, False, True, True])
    np.testing.assert_array_equal(region_mask(times, [(4.0, 5.0)]), [False] * 4)


def test_frame_auroc_and_top_frame_hits_by_hand():
    times = np.arange(10) + 0.5
    good = LocalizedClip(times, np.array([0, 0, 0, 5, 6, 0, 0, 0, 0, 0.0]), ((3.0, 5.0),))
    # One of the three inside frames (5.5) scores below one outside frame (0.5): AUROC = (3 * 7 - 1) / 21.
    half = LocalizedClip(times, np.array([2, 0, 0, 0, 0, 1, 3, 4, 0, 0.0]), ((5.0, 8.0),))
    result = localize("x", [good, half])
    assert math.isclose(result.frame_auroc, (1.0 + 20 / 21) / 2)
    assert result.top_frame_hit_rate == 1.0 and result.clips == 2
    wrong = LocalizedClip(times, np.array([9, 0, 0, 0, 0, 1, 3, 4, 0, 0.0]), ((5.0, 8.0),))
    assert localize("x", [good, wrong]).top_frame_hit_rate == 0.5


def test_clips_without_regions_or_frames_do_not_count():
    times = np.arange(4) + 0.5
    result = localize(
        "x", [LocalizedClip(times, np.ones(4), ()), LocalizedClip(np.zeros(0), np.zeros(0), ((0.0, 1.0),))]
    )
    assert result.clips == 0 and math.isnan(result.frame_auroc)
    assert "-" in format_localization([result])[2]


def test_a_fault_spanning_the_whole_clip_has_nothing_to_locate_and_does_not_count():
    times = np.arange(10) + 0.5
    good = LocalizedClip(times, np.array([0, 0, 0, 5, 6, 0, 0, 0, 0, 0.0]), ((3.0, 5.0),))
    whole = LocalizedClip(times, np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0.0]), ((0.0, 10.0),))  # e.g. imbalance
    result = localize("x", [good, whole])
    assert result.clips == 1 and result.top_frame_hit_rate == 1.0 and result.frame_auroc == 1.0
    assert localize("x", [whole]).clips == 0 and math.isnan(localize("x", [whole]).top_frame_hit_rate)
