"""Proposals from frame scores and their event-level scores: hysteresis, merging and dropping worked by hand
on made-up lanes, one-to-one event matching on made-up spans, proposals written into a project's region
store, and the event-level F1 of the default proposals on the synthetic set."""

from __future__ import annotations

import itertools
import math
import shutil

import numpy as np
import pytest
import torch

from engine.data.toy import ToyConfig
from engine.demo import DemoPlan, build_demo
from engine.detectors.registry import finding_label
from engine.evaluation.events import EventScores, event_f1, match_events
from engine.jobs import Cancelled, Progress, RecordingProgress
from engine.labels import proposals
from engine.labels.proposals import Proposal, ProposalSettings, propose, propose_all, propose_clip, settings_for
from engine.store import Project, labels, results
from engine.store.labels import LabelError, Region

#: Frames every second, each standing for one second around it: region edges fall on whole seconds.
TIMES = np.arange(10) + 0.5


def spans(found: list[Proposal]) -> list[tuple[float, float]]:
    return [(p.start_s, p.end_s) for p in found]


# -- propose on made-up lanes -----------------------------------------------------------------------------
def test_a_dip_above_off_keeps_one_region_and_a_dip_below_off_splits_it():
    settings = ProposalSettings(on=5, off=2, min_duration_s=0, merge_gap_s=0)
    assert spans(propose(TIMES, [0, 6, 3, 6, 0, 0, 0, 0, 0, 0], settings)) == [(1.0, 4.0)]
    assert spans(propose(TIMES, [0, 6, 1, 6, 0, 0, 0, 0, 0, 0], settings)) == [(1.0, 2.0), (3.0, 4.0)]


def test_a_region_opens_where_the_score_reaches_on_and_closes_where_it_falls_below_off():
    settings = ProposalSettings(on=5, off=2, min_duration_s=0, merge_gap_s=0)
    # Above off but never at on: no region. Rising through off first: the region still opens at on.
    assert propose(TIMES, [0, 3, 4, 4.9, 3, 0, 0, 0, 0, 0], settings) == []
    assert spans(propose(TIMES, [0, 3, 4, 5, 3, 2, 1, 0, 0, 0], settings)) == [(3.0, 6.0)]
    # Exactly at the levels counts: at `on` opens, at `off` stays open.
    assert spans(propose(TIMES, [0, 0, 5, 2, 0, 0, 0, 0, 0, 0], settings)) == [(2.0, 4.0)]


def test_edges_are_at_the_midpoints_between_frames_and_clipped_at_zero():
    times = np.array([0.0, 0.2, 0.6, 1.0, 1.2])  # uneven steps; the median step is 0.3
    found = propose(times, [9, 0, 9, 9, 0], ProposalSettings(on=5, off=5, min_duration_s=0, merge_gap_s=0))
    assert spans(found) == [(0.0, 0.1), (0.4, 1.1)]
    assert spans(propose(times, [0, 0, 0, 0, 9], ProposalSettings(5, 5, 0, 0))) == [(1.1, pytest.approx(1.35))]


def test_gaps_shorter_than_the_merge_gap_are_joined_then_short_regions_dropped():
    lane = [0, 9, 0, 9, 0, 0, 9, 0, 0, 0]  # regions 1-2, 3-4 and 6-7 s: gaps of 1 and 2 s
    assert spans(propose(TIMES, lane, ProposalSettings(5, 5, 0, 1.0))) == [(1.0, 2.0), (3.0, 4.0), (6.0, 7.0)]
    assert spans(propose(TIMES, lane, ProposalSettings(5, 5, 0, 1.5))) == [(1.0, 4.0), (6.0, 7.0)]
    assert spans(propose(TIMES, lane, ProposalSettings(5, 5, 0, 2.5))) == [(1.0, 7.0)]
    # Dropping comes after merging: two 1 s regions joined into 3 s survive a 2 s minimum, the lone one not.
    assert spans(propose(TIMES, lane, ProposalSettings(5, 5, 2.0, 1.5))) == [(1.0, 4.0)]
    merged = propose(TIMES, [0, 7, 0, 9, 0, 0, 0, 0, 0, 0], ProposalSettings(5, 5, 0, 1.5))
    assert [p.peak for p in merged] == [9.0]


def test_nan_frames_never_open_a_region_and_end_the_one_they_fall_in():
    settings = ProposalSettings(on=5, off=2, min_duration_s=0, merge_gap_s=0)
    assert propose(TIMES, [np.nan] * 10, settings) == []
    lane = [np.nan, 9, 9, np.nan, 3, 9, 0, np.nan, 0, 0]
    assert spans(propose(TIMES, lane, settings)) == [(1.0, 3.0), (5.0, 6.0)]


def test_confidence_is_one_half_at_on_and_grows_with_the_peak():
    background = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    settings = ProposalSettings(on=5, off=5, min_duration_s=0, merge_gap_s=0)
    confidences = []
    for peak in (5.0, 5.5, 7.0, 20.0, 1e6):
        [found] = propose(np.arange(8) + 0.5, [*background, peak, 0.0], settings)
        confidences.append(found.confidence)
    assert confidences[0] == 0.5
    assert all(a < b for a, b in itertools.pairwise(confidences[:-1]))  # the last saturates at 1
    assert 0.5 <= min(confidences) and max(confidences) <= 1.0
    # Scale-free: scaling every score and the levels leaves the confidence as it was.
    [scaled] = propose(
        np.arange(8) + 0.5, [*np.multiply(background, 1000), 7000.0, 0.0], ProposalSettings(5000, 5000, 0, 0)
    )
    assert scaled.confidence == pytest.approx(confidences[2])


def test_empty_flat_and_malformed_lanes():
    settings = ProposalSettings(on=1, off=0.5)
    assert propose([], [], settings) == []
    assert propose(TIMES, np.zeros(10), settings) == []
    [whole] = propose(TIMES, np.ones(10), settings)
    assert (whole.start_s, whole.end_s, whole.confidence) == (0.0, 10.0, 0.5)
    assert propose([0.5], [9.0], ProposalSettings(1, 1, 0, 0)) == []  # one frame: no length to give it
    with pytest.raises(LabelError, match="one time per frame"):
        propose(TIMES, np.ones(9), settings)
    with pytest.raises(LabelError, match="rise"):
        propose(TIMES[::-1], np.ones(10), settings)


def test_levels_and_ratios_must_be_in_order():
    with pytest.raises(LabelError, match="at or below"):
        ProposalSettings(on=1, off=2)
    with pytest.raises(LabelError, match="0 s or more"):
        ProposalSettings(on=1, off=1, min_duration_s=-1)
    with pytest.raises(LabelError, match="off ratio"):
        settings_for(2.0, np.ones(5), on_ratio=1.0, off_ratio=1.5)


def test_settings_are_multiples_of_the_frame_threshold_else_a_quantile_of_the_clip():
    settings = settings_for(4.0, np.zeros(5), on_ratio=1.5, off_ratio=0.5, min_duration_s=0.3, merge_gap_s=0.4)
    assert (settings.on, settings.off, settings.min_duration_s, settings.merge_gap_s) == (6.0, 2.0, 0.3, 0.4)
    lane = np.arange(101, dtype=float)  # its 95th percentile is 95
    for threshold in (None, 0.0, -3.0, math.nan):
        assert settings_for(threshold, lane, off_ratio=0.5).on == pytest.approx(95.0)
        assert settings_for(threshold, lane, off_ratio=0.5).off == pytest.approx(47.5)
    negative = settings_for(None, lane - 200, on_ratio=1.0, off_ratio=0.8)
    assert negative.off < negative.on == pytest.approx(-105.0)
    with pytest.raises(LabelError, match="no finite frame scores"):
        settings_for(None, [np.nan])


def test_propose_is_fast_on_a_long_lane():
    import time

    rng = np.random.default_rng(0)
    times = np.arange(100_000) * 0.032
    scores = np.convolve(rng.gamma(2.0, 1.0, times.size), np.ones(9) / 9, mode="same")
    settings = ProposalSettings(on=3.5, off=2.8, min_duration_s=0.2, merge_gap_s=1.0)
    found = propose(times, scores, settings)
    assert found
    best = min(_timed(lambda: propose(times, scores, settings), time.perf_counter) for _ in range(5))
    assert best < 0.010, f"propose took {best * 1e3:.1f} ms on 100k frames"


def _timed(call, clock) -> float:
    start = clock()
    call()
    return clock() - start


# -- event matching on made-up spans --------------------------------------------------------------------
def test_matching_is_one_to_one():
    truth = [(2.0, 4.0)]
    assert len(match_events([(2.0, 3.0), (3.0, 4.0)], truth, min_iou=0.3)) == 1
    scores = event_f1([([(2.0, 3.0), (3.0, 4.0)], truth)], min_iou=0.3)
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 0)
    # One long proposal over two true regions finds one of them.
    scores = event_f1([([(0.0, 10.0)], [(1.0, 5.0), (6.0, 9.0)])], min_iou=0.3)
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 1)


def test_matching_finds_the_most_pairs_not_just_the_best_overlap_first():
    # Greedy by IoU would pair the second proposal with the first truth (IoU 0.56, the best pair) and leave
    # the first proposal nothing (IoU 0 with the second truth); the maximal matching pairs both.
    predicted, truth = [(0.0, 2.0), (1.0, 2.8)], [(1.0, 2.0), (2.0, 3.0)]
    pairs = match_events(predicted, truth, min_iou=0.3)
    assert sorted((p, t) for p, t, _ in pairs) == [(0, 0), (1, 1)]


def test_the_iou_threshold_and_any_overlap():
    predicted, truth = [(0.0, 1.0)], [(0.8, 2.0)]  # IoU 0.2 / 2.0 = 0.1
    assert match_events(predicted, truth, min_iou=0.3) == []
    assert [(p, t) for p, t, _ in match_events(predicted, truth, min_iou=0.1)] == [(0, 0)]
    assert [(p, t) for p, t, _ in match_events(predicted, truth, min_iou=0)] == [(0, 0)]
    assert match_events([(0.0, 1.0)], [(1.0, 2.0)], min_iou=0) == []  # touching is no overlap
    assert match_events([(0.0, 1.0)], [(0.0, 1.0)], min_iou=1.0) != []


def test_counts_pool_over_clips_and_normal_clips_only_add_false_positives():
    scores = event_f1([([(1.0, 2.0)], [(1.0, 2.0)]), ([(5.0, 6.0)], []), ([], [(3.0, 4.0)])], min_iou=0.3)
    assert scores == EventScores.from_counts(1, 1, 1)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    assert event_f1([([], [])]).f1 == 1.0 and event_f1([([(0.0, 1.0)], [])]).f1 == 0.0
    assert event_f1([([Proposal(1.0, 2.0, 3.0, 0.5)], [(1.0, 2.0)])]).tp == 1  # proposals are spans too


# -- in a project ---------------------------------------------------------------------------------------
#: A synthetic set big enough to judge regions on (10 s clips as in the demo; three machines, two sections:
#: 60 anomalous and 60 normal test clips), small enough to make, fit and score with patch_memory (the best
#: detector for proposals on the demo sets, and training-free) in about ten seconds. Transient events only:
#: proposals mark where a short event is, and a stationary fault spans the whole clip.
PROPOSAL_SET = DemoPlan(
    ToyConfig(scale=0.012, seed=11, duration_s=10.0, sections=2, anomalies="transient"), detectors=("patch_memory",)
)
#: Event F1 (IoU >= 0.3) of the default proposals on this set at generator seeds 0-9, 11-13 ranged from 0.356
#: (seed 4) to 0.503 (seed 2); seed 11 gave 0.400, and gives 0.528 since patch_memory's support holds both
#: domains with three normals left out for its thresholds. The bar sits a margin below the lowest seed.
F1_BAR = 0.30


@pytest.fixture(scope="session")
def scored_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proposals") / "project"
    build_demo(folder, PROPOSAL_SET, torch.device("cpu"), Progress())
    return folder


@pytest.fixture
def scored_copy(scored_set, tmp_path):
    target = tmp_path / "project"
    shutil.copytree(scored_set, target, ignore=shutil.ignore_patterns("audio", "features"))
    with Project.open(target) as project:
        yield project


def test_default_proposals_find_the_anomalies_of_the_synthetic_set(scored_set):
    with Project.open(scored_set) as project:
        scored = results.clip_scores(project)
        pairs = []
        for clip in project.clips(split="test"):
            if clip.label == "anomaly" and not clip.anomaly_regions:
                continue
            found = proposals.clip_proposals(
                project, clip.clip_id, scored[clip.clip_id]["patch_memory"], "patch_memory"
            )
            pairs.append(([(r.start_s, r.end_s) for r in found], list(clip.anomaly_regions)))
    scores, loose = event_f1(pairs), event_f1(pairs, min_iou=0)
    message = (
        f"event F1 {scores.f1:.3f} at IoU >= 0.3 (P {scores.precision:.3f}, R {scores.recall:.3f}, "
        f"tp {scores.tp}, fp {scores.fp}, fn {scores.fn}; any overlap: F1 {loose.f1:.3f}) over "
        f"{len(pairs)} test clips"
    )
    print(f"\npatch_memory default proposals: {message}")
    assert sum(bool(truth) for _, truth in pairs) >= 10 and sum(not truth for _, truth in pairs) >= 10
    assert scores.f1 >= F1_BAR, message


def test_propose_clip_writes_proposals_and_replaces_only_that_models_own(scored_copy):
    project = scored_copy
    scored = results.clip_scores(project)
    clip_id = next(
        c
        for c, by in scored.items()
        if "patch_memory" in by and proposals.clip_proposals(project, c, by["patch_memory"], "patch_memory")
    )
    model_id = scored[clip_id]["patch_memory"].model_id
    first_class = project.label_classes()[0].name
    manual = labels.add_region(project, Region(clip_id, 0.1, 0.2, first_class))
    other = labels.add_region(project, Region(clip_id, 0.3, 0.4, first_class, kind="proposal", model_id=None))

    written = propose_clip(project, clip_id, "patch_memory")
    stored = labels.regions(project, clip_id, kinds=("proposal",), model_id=model_id)
    assert [(r.start_s, r.end_s) for r in stored] == [(r.start_s, r.end_s) for r in written] and stored
    # Named as what the anomaly detector found, not as one of the user's classes (and not made a class).
    assert all(
        r.label == proposals.ANOMALY_FINDING and r.model_id == model_id and 0.5 <= r.confidence <= 1 for r in stored
    )
    assert proposals.ANOMALY_FINDING not in [c.name for c in project.label_classes()]

    fewer = propose_clip(project, clip_id, "patch_memory", on_ratio=1e6, off_ratio=1e6, label="ELSE")
    assert fewer == [] and labels.regions(project, clip_id, kinds=("proposal",), model_id=model_id) == []
    kept = labels.regions(project, clip_id, kinds=("manual", "proposal"))
    assert {r.region_id for r in kept} == {manual.region_id, other.region_id}


def test_a_classifiers_proposals_carry_the_class_it_finds_an_anomaly_detectors_say_anomaly():
    assert finding_label("leak_binary") == finding_label("leak_multiclass") == "LEAK"
    assert {finding_label(d) for d in ("knn", "patch_memory", "dcase_ae")} == {proposals.ANOMALY_FINDING}
    assert finding_label("a_detector_since_removed") == proposals.ANOMALY_FINDING


def test_propose_clip_explains_a_clip_without_a_score(scored_copy):
    train = scored_copy.clips(split="train")[0].clip_id
    with pytest.raises(LabelError, match="no patch_memory score"):
        propose_clip(scored_copy, train, "patch_memory")


def test_propose_all_reports_progress_and_a_cancelled_run_keeps_the_clips_it_finished(scored_copy):
    project = scored_copy
    progress = RecordingProgress()
    written = propose_all(project, "patch_memory", progress)
    stored = labels.regions(project, kinds=("proposal",))
    assert written == len(stored) > 0
    assert progress.updates[-1][:2] == (len(results.latest_scores(project, "patch_memory")),) * 2
    assert propose_all(project, "patch_memory") == written  # again: replaced, not added
    assert len(labels.regions(project, kinds=("proposal",))) == written

    model_of = {r.clip_id: r.model_id for r in stored}
    with_some = sorted(model_of)[:4]
    for clip_id in with_some:
        labels.replace_proposals(project, clip_id, model_of[clip_id], [])
    stopping = RecordingProgress(cancel_after=3)  # the start, then one update per finished clip
    with pytest.raises(Cancelled):
        propose_all(project, "patch_memory", stopping, clip_ids=with_some)
    done = {r.clip_id for r in labels.regions(project, kinds=("proposal",)) if r.clip_id in with_some}
    assert done == set(with_some[:2])
