"""Thresholds a user can trust with few recordings: a detector fitted on 4 normal clips of a machine learns
its threshold from scores of clips it did not see (a clip is not its own neighbour, nor rebuilt by a network
that trained on it), so unseen normal recordings of that machine are not all flagged; and the CLI says that
a group fitted on so few clips is shaky."""

from __future__ import annotations

import numpy as np
import pytest

from engine import cli
from engine.audio.feature_cache import FeatureCache
from engine.data.toy import ToyConfig, generate
from engine.detectors.held_out import held_out_folds
from engine.detectors.registry import detector_class, make_config

#: The detectors fitted on normal clips without labels, each quick on short clips.
UNSUPERVISED = {
    "knn": {},
    "patch_memory": {},
    "dcase_ae": {"epochs": 5},
    "meta_proto": {"epochs": 1, "episodes": 4, "dim": 32, "n_mels": 32, "segment_frames": 32},
    "attr_classifier": {"epochs": 2, "batch_size": 8, "segment_frames": 32},
}
FEW = 4


def _detector(key, tmp_path, **settings):
    config = make_config(key, {**UNSUPERVISED[key], **settings})
    return detector_class(key)(config, cache=FeatureCache(tmp_path / "features"))


def _few_normals(project, group):
    """The first 4 normal training recordings of a machine and section, all made under the same conditions
    (the source domain), as a user's own handful of plain recordings are."""
    train = sorted(
        (c for c in project.clips(split="train") if c.group == group and c.domain == "source"), key=lambda c: c.clip_id
    )
    return train[:FEW]


@pytest.mark.parametrize("key", list(UNSUPERVISED))
def test_fitted_on_four_normals_most_unseen_normals_stay_below_the_threshold(key, toy_project, tmp_path):
    groups = sorted({c.group for c in toy_project.clips()})
    normal_flags, anomaly_flags = [], []
    for group in groups:
        detector = _detector(key, tmp_path)
        detector.fit(_few_normals(toy_project, group))
        assert detector.info["trained_on"] == FEW and "warning" in detector.info
        test = [c for c in toy_project.clips(split="test") if c.group == group and c.domain == "source"]
        for clip, detection in zip(test, detector.score(test), strict=True):
            (anomaly_flags if clip.label == "anomaly" else normal_flags).append(detection.decision)
    assert len(normal_flags) >= 5 * len(groups)
    # At least half of the unseen normal recordings stay below the threshold ...
    assert np.mean(normal_flags) <= 0.5, f"{key} flagged {np.mean(normal_flags):.0%} of unseen normal clips"
    # ... and the threshold still means something: anomalies are flagged more often than normal clips.
    assert np.mean(anomaly_flags) > np.mean(normal_flags)


def test_a_training_clip_is_not_its_own_nearest_neighbour(toy_project, tmp_path):
    normals = _few_normals(toy_project, "fan/section_00")
    detector = _detector("knn", tmp_path)
    detector.fit(normals)
    # Scored as a test clip, a training clip finds itself in the bank: its lowest possible score.
    own = np.array([d.score for d in detector.score(normals)])
    # The threshold rests on each clip's score against banks built without it, which are all higher.
    assert detector.held_out.shape == own.shape
    assert np.all(detector.held_out > own + 1.0)
    assert detector.threshold > own.max()


def test_the_auto_encoder_threshold_comes_from_clips_it_did_not_train_on(toy_project, tmp_path):
    normals = _few_normals(toy_project, "fan/section_00")
    detector = _detector("dcase_ae", tmp_path, mode="mahalanobis")
    detector.fit(normals)
    own = np.sort([d.score for d in detector.score(normals)])
    held_out = np.sort(detector.held_out["mahalanobis"][0])
    assert len(held_out) == FEW  # cross-fitted: each clip scored by a network trained on the other three
    # The residual statistics of the clips themselves make them look more normal than any unseen clip.
    assert np.median(held_out) > np.median(own)


def test_enrolled_clips_join_the_held_out_scores_and_the_threshold_is_learnt_again(toy_project, tmp_path):
    detector = _detector("knn", tmp_path)
    detector.fit(_few_normals(toy_project, "fan/section_00"))
    before = detector.threshold
    target = [c for c in toy_project.clips(split="train") if c.group == "fan/section_00" and c.domain == "target"]
    detector.enrol(target)
    assert len(detector.held_out) == FEW + len(target)
    assert np.all(np.isfinite(detector.held_out))
    assert detector.threshold != before and np.isfinite(detector.threshold)


def test_held_out_folds_cover_every_clip_once_and_spread_each_domain():
    domains = ["source"] * 12 + ["target"] * 3
    folds = held_out_folds(len(domains), 5, seed=0, strata=domains)
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(15))
    assert all(sum(domains[i] == "target" for i in fold) <= 1 for fold in folds)
    assert [len(f) for f in held_out_folds(4, 5)] == [1, 1, 1, 1]  # fewer clips than folds: leave one out
    assert [f.tolist() for f in held_out_folds(15, 5, seed=0, strata=domains)] == [f.tolist() for f in folds]


def test_the_cli_warns_after_fitting_a_group_on_few_normals(tmp_path, capsys):
    data, project = tmp_path / "few", tmp_path / "plant"
    # At this scale each machine and section has 4 normal training clips (1 source, 3 target).
    generate(data, ToyConfig(scale=0.001, seed=2, duration_s=1.0, sections=1, machines=("fan",)))
    assert cli.main(["new", str(project)]) == 0
    assert cli.main(["import", str(project), str(data)]) == 0
    capsys.readouterr()
    assert cli.main(["fit", str(project), "--detector", "knn"]) == 0
    out = capsys.readouterr().out
    assert "Fitted knn for fan/section_00" in out
    assert "warning: knn for fan/section_00 was fitted on only 4 normal clip(s)" in out
    assert "10 or more normal training clips are advised" in out
