"""Scores on one scale: every detector measures a clip against the scores its own training normals got
when it had not seen them, per domain, so an analyst can compare detectors whose raw scores live on
different scales (and the ensemble can add them up)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.audio.feature_cache import FeatureCache
from engine.detectors.normalisation import MIN_PER_DOMAIN, domain_shift, normalised_score, score_stats
from engine.detectors.registry import detector_class, load_model, make_config

#: The three unsupervised detectors, each quick on short clips.
UNSUPERVISED = {"knn": {}, "patch_memory": {}, "dcase_ae": {"epochs": 5}}
GROUP = "fan/section_00"


def _detector(key, tmp_path, **settings):
    config = make_config(key, {**UNSUPERVISED[key], **settings})
    return detector_class(key)(config, cache=FeatureCache(tmp_path / "features"))


def _clips(project, split, domain=None):
    return sorted(
        (c for c in project.clips(split=split) if c.group == GROUP and (domain is None or c.domain == domain)),
        key=lambda c: c.clip_id,
    )


@pytest.mark.parametrize("key", list(UNSUPERVISED))
def test_every_detector_says_which_training_clips_its_held_out_scores_belong_to(key, toy_project, tmp_path):
    train = _clips(toy_project, "train")
    detector = _detector(key, tmp_path)
    detector.fit(train)
    train_ids = {c.clip_id for c in train}
    assert detector.held_out_by_clip, f"{key} kept no held-out scores by clip"
    assert set(detector.held_out_by_clip) <= train_ids
    assert all(np.isfinite(list(detector.held_out_by_clip.values())))
    stats = detector.info["normalisation"]
    assert stats["all"][2] == len(detector.held_out_by_clip)
    assert stats["source"][2] + stats.get("target", [0, 0, 0])[2] == len(detector.held_out_by_clip)
    frame_mean, frame_std = detector.info["frame_normalisation"]
    assert np.isfinite(frame_mean) and frame_std > 0

    # Enrolled target clips join the held-out scores under their own ids.
    extra = _clips(toy_project, "test", "target")[:2]
    normal_extra = [dataclasses.replace(c, label="normal") for c in extra]
    detector.enrol(normal_extra)
    assert {c.clip_id for c in extra} <= set(detector.held_out_by_clip)
    assert set(detector.held_out_by_clip) <= train_ids | {c.clip_id for c in extra}


@pytest.mark.parametrize("key", list(UNSUPERVISED))
def test_the_normalised_score_is_the_score_against_the_clips_domain(key, toy_project, tmp_path):
    detector = _detector(key, tmp_path)
    detector.fit(_clips(toy_project, "train"))
    stats = detector.info["normalisation"]
    test = _clips(toy_project, "test")
    for clip, detection in zip(test, detector.score(test), strict=True):
        domain = clip.domain if stats.get(clip.domain, [0, 0, 0])[2] >= MIN_PER_DOMAIN else "all"
        mean, std, _ = stats[domain]
        assert detection.normalised == pytest.approx((detection.score - mean) / std, rel=1e-6, abs=1e-9)


def test_a_clip_of_no_known_domain_is_measured_against_both_domains_pooled(toy_project, tmp_path):
    detector = _detector("knn", tmp_path)
    detector.fit(_clips(toy_project, "train"))
    dropped = dataclasses.replace(_clips(toy_project, "test", "target")[0], domain=None)
    [detection] = detector.score([dropped])
    mean, std, count = detector.info["normalisation"]["all"]
    assert count == len(detector.held_out_by_clip)
    assert detection.normalised == pytest.approx((detection.score - mean) / std)


def test_a_domain_with_too_few_held_out_scores_uses_the_pooled_statistics():
    stats = {"all": [2.0, 1.0, 12], "source": [1.0, 0.5, 10], "target": [9.0, 3.0, 2]}
    assert normalised_score(3.0, "source", stats) == pytest.approx(4.0)
    assert normalised_score(3.0, "target", stats) == pytest.approx(1.0)  # 2 target scores: pooled
    assert normalised_score(3.0, None, stats) == pytest.approx(1.0)
    assert np.isnan(normalised_score(3.0, "source", {}))


def test_identical_held_out_scores_never_divide_by_zero():
    for scores in ([5.0] * 5, [5.0], [0.0, 0.0, 0.0]):
        stats = {"all": score_stats(scores)}
        assert stats["all"][1] > 0
        assert np.isfinite(normalised_score(6.0, None, stats))


@pytest.mark.parametrize("key", list(UNSUPERVISED))
def test_a_saved_model_keeps_its_normalisation_and_enrols_under_known_ids(key, toy_project, tmp_path):
    detector = _detector(key, tmp_path)
    detector.fit(_clips(toy_project, "train"))
    test = _clips(toy_project, "test")[:4]
    before = [d.normalised for d in detector.score(test)]
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    assert loaded.info["normalisation"] == detector.info["normalisation"]
    assert loaded.held_out_by_clip == pytest.approx(detector.held_out_by_clip)
    # in the detector's own order: its enrolment pairs these ids with its held-out arrays by position
    assert list(loaded.held_out_by_clip) == list(detector.held_out_by_clip)
    assert [d.normalised for d in loaded.score(test)] == pytest.approx(before, rel=1e-4, abs=1e-4)
    # Enrolling into the loaded model keeps every domain's statistics (the earlier clips' domains are known).
    extra = [dataclasses.replace(c, label="normal") for c in _clips(toy_project, "test", "target")[:2]]
    loaded.enrol(extra)
    assert set(detector.held_out_by_clip) < set(loaded.held_out_by_clip)
    assert loaded.info["normalisation"]["source"][2] == detector.info["normalisation"]["source"][2]


def test_a_model_saved_before_normalisation_scores_nan_and_still_decides(toy_project, tmp_path):
    detector = _detector("knn", tmp_path)
    detector.fit(_clips(toy_project, "train"))
    folder = detector.save(tmp_path / "old")
    meta = json.loads((folder / "model.json").read_text())
    del meta["info"]["normalisation"], meta["info"]["frame_normalisation"], meta["held_out"]
    (folder / "model.json").write_text(json.dumps(meta))
    old = load_model(folder, cache=FeatureCache(tmp_path / "features"))
    detections = old.score(_clips(toy_project, "test"))
    assert all(np.isnan(d.normalised) for d in detections)
    assert any(d.decision for d in detections)
    assert np.isnan(old.normalise_frames(detections[0].frame_scores)).all()


def test_frame_scores_are_normalised_by_the_held_out_frame_scores(toy_project, tmp_path):
    detector = _detector("dcase_ae", tmp_path)
    detector.fit(_clips(toy_project, "train"))
    mean, std = detector.info["frame_normalisation"]
    [detection] = detector.score(_clips(toy_project, "test")[:1])
    assert detector.normalise_frames(detection.frame_scores) == pytest.approx(
        (detection.frame_scores - mean) / std, rel=1e-4, abs=1e-4
    )


@pytest.mark.parametrize("key", list(UNSUPERVISED))
def test_normal_test_clips_centre_near_zero_and_anomalies_lie_higher(key, toy_project, tmp_path):
    detector = _detector(key, tmp_path)
    detector.fit(_clips(toy_project, "train"))
    test = _clips(toy_project, "test")
    by_label = {"normal": [], "anomaly": []}
    for clip, detection in zip(test, detector.score(test), strict=True):
        by_label[clip.label].append(detection.normalised)
    assert abs(np.median(by_label["normal"])) < 1.5
    assert np.median(by_label["anomaly"]) > np.median(by_label["normal"])


@pytest.mark.parametrize("key, settings", [("knn", {}), ("ensemble", {"members": "knn,patch_memory"})])
def test_a_clip_enrolled_twice_is_named_and_skipped_and_the_model_keeps_every_clips_score(
    key, settings, toy_project, tmp_path
):
    from engine.errors import EarmarkError
    from engine.jobs import Progress

    detector = detector_class(key)(make_config(key, settings), cache=FeatureCache(tmp_path / "features"))
    detector.fit(_clips(toy_project, "train"))
    first, second = [dataclasses.replace(c, label="normal") for c in _clips(toy_project, "test", "target")[:2]]
    detector.enrol([first])
    problems: list[str] = []
    progress = Progress(on_problem=problems.append)
    detector.enrol([first, second], progress)
    assert problems == [f"{first.clip_id}: not enrolled, the model already holds it"]
    assert {first.clip_id, second.clip_id} <= set(detector.held_out_by_clip)
    assert detector.info["normalisation"]["target"][2] >= 2  # the statistics per domain are kept
    with pytest.raises(EarmarkError, match="does not hold yet"):
        detector.enrol([second])


def test_the_domain_shift_is_the_distance_between_the_domains_centres_in_the_narrower_spread():
    stats = {"source": [1.0, 0.5, 10], "target": [3.0, 4.0, 3], "all": [1.5, 1.0, 13]}
    assert domain_shift(stats) == pytest.approx(4.0)
    assert domain_shift({**stats, "target": [3.0, 0.25, 3]}) == pytest.approx(8.0), "a tight target domain"
    assert domain_shift({**stats, "target": [1.0, 0.25, 3]}) == 0.0, "the same centre"
    assert domain_shift({"source": [1.0, 0.5, 10], "all": [1.0, 0.5, 10]}) == 0.0, "no target scores: no shift"
    # a single target score has no spread of its own to measure against (score_stats makes one up)
    assert domain_shift({**stats, "target": [1.05, 0.105, 1]}) == 0.0
    assert domain_shift({**stats, "target": [3.0, 0.25, 2]}) == pytest.approx(8.0), "two scores have a spread"
    assert domain_shift(None) == 0.0


def test_a_clip_the_model_trained_on_without_holding_it_out_is_not_enrolled_again(toy_project, tmp_path):
    """dcase_ae holds a share of a large group out of training and trains on the rest: a clip it trained on has
    no held-out score, yet enrolling it would count it twice (scored by a network that reconstructs it). It
    is named and skipped, by the model fitted and by the same model saved and loaded."""
    from engine.errors import EarmarkError
    from engine.jobs import Progress

    train = [c for c in toy_project.clips(split="train")]
    group = max({c.group for c in train}, key=lambda g: sum(c.group == g for c in train))
    clips = [c for c in train if c.group == group]
    detector = _detector("dcase_ae", tmp_path, cross_fit_below=len(clips))
    detector.fit(clips)
    trained = [c for c in clips if c.clip_id not in detector.held_out_by_clip]
    assert trained, "dcase_ae trained on most clips and held out a share"
    loaded = load_model(detector.save(tmp_path / "model"))
    for model in (detector, loaded):
        problems: list[str] = []
        with pytest.raises(EarmarkError, match="does not hold yet"):
            model.enrol(trained[:2], Progress(on_problem=problems.append))
        assert problems == [f"{c.clip_id}: not enrolled, the model already holds it" for c in trained[:2]]


def test_the_few_normals_warning_counts_the_clips_enrolled_since(toy_project, tmp_path):
    detector = _detector("knn", tmp_path)
    detector.fit(_clips(toy_project, "train")[:4])
    assert "only 4 normal clip(s): its threshold rests on 4 held-out score(s)" in detector.info["warning"]
    [target] = [dataclasses.replace(c, label="normal") for c in _clips(toy_project, "test", "target")[:1]]
    detector.enrol([target])
    assert "only 5 normal clip(s): its threshold rests on 5 held-out score(s)" in detector.info["warning"]
