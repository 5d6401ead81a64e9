"""The detector contract, run over every registered detector on the project's own synthetic data: a detector
fitted on a group's normal clips (one-class) or trained from labels through its own training code
(supervised: the leak classifiers, trained tiny on the synthetic leak survey) scores with decisions from its
threshold, saves and loads to the same scores, and fails clearly where its way of learning does not apply.
The detectors are taken from the registry, so a detector added there is covered without touching this file
(give it quick settings in `QUICK` where its defaults are slow)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

import engine.detectors
from engine.audio.feature_cache import FeatureCache
from engine.classifiers.leak import train_and_score
from engine.data.clip import Clip
from engine.data.importers import import_source
from engine.data.leak_toy import generate_leaks
from engine.detectors import runs
from engine.detectors.base import Detector, Learning
from engine.detectors.knn import KnnDetector
from engine.detectors.registry import (
    CATALOGUE,
    detector_class,
    detector_keys,
    load_model,
    make_config,
    parse_settings,
)
from engine.detectors.thresholds import gamma_threshold
from engine.errors import EarmarkError
from engine.jobs import RecordingProgress
from engine.labels.exchange import import_labels
from engine.store import Project, results

#: Settings that keep each detector quick on the small data sets; every other setting is its default. For a
#: detector fitted on normal clips they are its config; for one trained from labels, its training's.
QUICK = {
    "dcase_ae": {"epochs": 3},
    "attr_classifier": {"epochs": 2, "batch_size": 8},
    "ensemble": {"member_settings": "dcase_ae.epochs=3"},
    "meta_proto": {"epochs": 2, "episodes": 8},
    "leak_binary": {"epochs": 6, "batch_size": 128},
    "leak_multiclass": {"epochs": 6, "batch_size": 128},
    "ast_ae": {
        "epochs": 2,
        "hidden_size": 32,
        "layers": 1,
        "heads": 2,
        "window_frames": 64,
        "decoder_width": 32,
        "batch_size": 4,
    },
}
GROUP = "fan/section_00"
ALL = detector_keys(None)
SUPERVISED = detector_keys(Learning.SUPERVISED)


@dataclasses.dataclass
class Trained:
    """A fitted or trained detector, the clips it is scored on here, and training clips of the kind it
    should pass (a group's normal clips; files labelled other than the class it finds)."""

    detector: Detector
    clips: list[Clip]
    passing: list[Clip]


def _detector(key, tmp_path, **settings):
    quick = QUICK.get(key, {}) if key not in SUPERVISED else {}
    return detector_class(key)(make_config(key, {**quick, **settings}), cache=FeatureCache(tmp_path / "features"))


def _group(project, split=None):
    return [c for c in project.clips() if c.group == GROUP and (split is None or c.split == split)]


@pytest.fixture(scope="module")
def leak_survey(tmp_path_factory) -> Path:
    """A synthetic leak survey imported with its labels, each supervised detector trained on it through its
    own training code (`earmark train leak`), tiny and quick."""
    folder = tmp_path_factory.mktemp("survey")
    survey = generate_leaks(folder / "audio", files_per_class=4, duration_s=4.0, seed=2)
    with Project.create(folder / "project") as project:
        import_source(project, survey)
        import_labels(project, [survey / "labels.csv"])
        session = runs.Session(project)
        for key in SUPERVISED:
            trainers = {"leak_binary": "binary", "leak_multiclass": "multiclass"}
            assert key in trainers, f"the contract test does not know how to train {key}: add it here"
            train_and_score(session, [trainers[key]], QUICK.get(key), score=False)
    return folder / "project"


def _trained(key, toy_project, tmp_path, request, **settings) -> Trained:
    if detector_class(key).learning is Learning.ONE_CLASS:
        detector = _detector(key, tmp_path, **settings)
        progress = RecordingProgress()
        detector.fit(_group(toy_project), progress)
        assert progress.updates, "fitting reports progress"
        return Trained(
            detector, _group(toy_project, "test"), [c for c in _group(toy_project, "train") if c.label == "normal"]
        )
    with Project.open(request.getfixturevalue("leak_survey")) as survey:
        record = results.models(survey, key)[-1]
        detector = load_model(results.model_folder(survey, record), cache=FeatureCache(tmp_path / "features"))
        clips = survey.clips()
    return Trained(
        detector,
        [c for c in clips if c.split == "test"],
        [c for c in clips if c.split == "train" and c.attributes.get("class") != "LEAK"],
    )


def test_every_detector_of_the_issue_is_registered():
    assert {"dcase_ae", "knn", "patch_memory", "ensemble"} <= set(detector_keys())
    assert {"leak_binary", "leak_multiclass"} == set(SUPERVISED)
    assert set(ALL) == set(detector_keys()) | set(SUPERVISED)


def test_every_detector_folder_is_in_the_catalogue():
    """One folder per detector: a folder with a detector.py that the registry does not import would be a
    detector no user can choose and no contract test runs."""
    folders = {p.name for p in Path(engine.detectors.__file__).parent.iterdir() if (p / "detector.py").is_file()}
    registered = {cls.__module__.split(".")[2] for cls in CATALOGUE}
    assert folders == registered


def test_a_detector_fitted_on_normal_clips_must_say_how():
    with pytest.raises(TypeError, match="must implement _fit and _enrol"):
        type(
            "Lazy",
            (Detector,),
            {
                "key": "lazy",
                "_detect": KnnDetector._detect,
                "state_dict": KnnDetector.state_dict,
                "load_state_dict": KnnDetector.load_state_dict,
            },
        )


@pytest.fixture(params=ALL)
def key(request):
    return request.param


def test_a_trained_detector_gives_a_detection_per_clip_with_frame_scores_and_a_decision(
    key, toy_project, tmp_path, request
):
    trained = _trained(key, toy_project, tmp_path, request)
    detector = trained.detector
    assert detector.threshold is not None and np.isfinite(detector.threshold)
    detections = detector.score(trained.clips)
    assert [d.clip_id for d in detections] == [c.clip_id for c in trained.clips]
    for clip, detection in zip(trained.clips, detections, strict=True):
        assert np.isfinite(detection.score)
        assert len(detection.frame_scores) == len(detection.frame_times) > 0
        assert np.all(np.diff(detection.frame_times) > 0)
        assert 0 <= detection.frame_times[0] and detection.frame_times[-1] <= clip.duration_s + 0.1
        for start, end, peak in detection.regions:
            assert 0 <= start < end and peak >= detector.frame_threshold
    # The decision is the score against the threshold: every flagged clip scores at or above it, every
    # passed one at or below it.
    assert all(d.score >= detector.threshold for d in detections if d.decision)
    assert all(d.score <= detector.threshold for d in detections if not d.decision)
    # The threshold is learnt from training normals (or from labels): most of those pass.
    assert np.mean([d.decision for d in detector.score(trained.passing)]) <= 0.5


def test_every_detection_carries_an_anomaly_map_in_the_units_of_its_frame_lane(key, toy_project, tmp_path, request):
    """An analyst compares detectors' maps over the spectrogram, each coloured against its model's frame
    threshold: every detector fitted on normal clips gives a map whose grid lies on the clip's spectrogram
    and whose columns are its frame lane (a frame score is the mean or the max of its map column; the
    ensemble's map and lane are both on its members' normalised scale). A classifier trained from labels may
    give a lane only."""
    trained = _trained(key, toy_project, tmp_path, request)
    for clip, detection in zip(trained.clips, trained.detector.score(trained.clips), strict=True):
        grid = detection.anomaly_map
        if grid is None:
            assert key in SUPERVISED, f"{key} gives no anomaly map"
            continue
        freq, times = np.asarray(detection.map_freq_spans_hz), np.asarray(detection.map_time_spans_s)
        assert grid.shape == (len(freq), len(times)) and np.all(np.isfinite(grid)) and np.ptp(grid) > 0
        assert np.all(freq[:, 0] < freq[:, 1]) and np.all(np.diff(freq, axis=0) > 0)
        assert 0 <= freq.min() and freq.max() <= clip.sample_rate / 2 + 1e-6
        assert np.all(times[:, 0] < times[:, 1]) and np.all(np.diff(times, axis=0) > 0)
        assert 0 <= times.min() and times.max() <= clip.duration_s + 1e-3
        if key == "ensemble":
            # Its lane fuses the members' lanes and its map their maps, each member's on the scale of its own
            # held-out frame scores: a map column's mean or max is no fused lane, and the ensemble's frame
            # threshold (the members' fused) belongs to the lane it proposes regions from.
            continue
        # the lane's frame nearest each column's centre
        nearest = np.abs(detection.frame_times[None, :] - times.mean(axis=1)[:, None]).argmin(axis=1)
        lane = detection.frame_scores[nearest]
        tolerance = 1e-3 * np.abs(lane) + 1e-4 * np.abs(lane).max()
        assert np.all(np.abs(grid.mean(axis=0) - lane) <= tolerance) or np.all(
            np.abs(grid.max(axis=0) - lane) <= tolerance
        ), f"{key}'s map columns are not its lane"


def test_a_saved_model_loads_and_gives_the_same_scores(key, toy_project, tmp_path, request):
    trained = _trained(key, toy_project, tmp_path, request)
    detector, test = trained.detector, trained.clips
    folder = detector.save(tmp_path / "model")
    assert (folder / "model.safetensors").is_file() and (folder / "model.json").is_file()
    # a detector that trained in epochs (the leak classifiers) keeps its curves beside the model
    assert (folder / "history.json").is_file() == bool(detector.history)
    loaded = load_model(folder, cache=FeatureCache(tmp_path / "features"))
    assert type(loaded) is type(detector) and loaded.threshold == detector.threshold
    np.testing.assert_allclose(
        [d.score for d in loaded.score(test)], [d.score for d in detector.score(test)], rtol=1e-4, atol=1e-5
    )


def test_enrolling_target_clips_adds_them_without_refitting(key, toy_project, tmp_path, request):
    if key in SUPERVISED:  # it learns from labels: enrolling is refused, and the model stays as it was
        trained = _trained(key, toy_project, tmp_path, request)
        before = [d.score for d in trained.detector.score(trained.clips)]
        with pytest.raises(EarmarkError, match="learns from labels, not by enrolment.*earmark train"):
            trained.detector.enrol(trained.passing)
        assert [d.score for d in trained.detector.score(trained.clips)] == before
        return
    # The auto-encoder's MSE score ignores domains; its Mahalanobis mode is the one enrolment feeds.
    detector = _detector(key, tmp_path, **({"mode": "mahalanobis"} if key == "dcase_ae" else {}))
    source_only = [c for c in _group(toy_project) if c.domain != "target" or c.split != "train"]
    detector.fit(source_only)
    target = [c for c in _group(toy_project, "train") if c.domain == "target"]
    test = _group(toy_project, "test")
    before = {d.clip_id: d.score for d in detector.score(test)}
    threshold = detector.threshold
    detector.enrol(target)
    after = {d.clip_id: d.score for d in detector.score(test)}
    assert detector.info["enrolled"] == len(target)
    target_normals = [c.clip_id for c in test if c.domain == "target" and c.label == "normal"]
    assert any(abs(after[i] - before[i]) > 1e-6 for i in target_normals), "enrolment changes target scores"
    assert detector.threshold != threshold, "the threshold is learnt again with the enrolled clips"


def test_fitting_without_normal_training_clips_is_a_clear_error(key, toy_project, tmp_path):
    if key in SUPERVISED:  # nothing to fit on normal clips: the error says how it is trained
        with pytest.raises(EarmarkError, match="trained from labels, not fitted on normal clips.*earmark train"):
            _detector(key, tmp_path).fit(_group(toy_project))
        return
    with pytest.raises(EarmarkError, match="no normal training clips"):
        _detector(key, tmp_path).fit(_group(toy_project, "test"))


@pytest.mark.parametrize("supervised", SUPERVISED)
def test_fitting_a_supervised_detector_in_a_project_points_at_its_training(supervised, toy_project):
    """The message is the detector's own `how_to_train`, with the project filled in: each leak classifier
    names its mode, and a next supervised detector would name its own training."""
    with pytest.raises(EarmarkError, match="trained from labelled regions.*earmark train leak") as raised:
        runs.fit(runs.Session(toy_project), supervised)
    mode = detector_class(supervised).mode
    assert f"`earmark train leak {toy_project.folder} --mode {mode}`" in str(raised.value)
    assert results.models(toy_project) == []


def test_scoring_an_unfitted_detector_is_a_clear_error(key, toy_project, tmp_path):
    with pytest.raises(EarmarkError, match="not been fitted"):
        _detector(key, tmp_path).score(_group(toy_project, "test"))


def test_a_corrupt_clip_in_a_batch_is_reported_and_the_rest_are_scored(key, toy_project, tmp_path, request):
    trained = _trained(key, toy_project, tmp_path, request)
    detector, test = trained.detector, trained.clips
    broken = tmp_path / "broken.wav"
    shutil.copy(test[0].path, broken)
    broken.write_bytes(broken.read_bytes()[:100])
    batch = [dataclasses.replace(test[0], clip_id="broken", path=str(broken), checksum="0" * 64), *test[1:]]
    progress = RecordingProgress()
    detections = detector.score(batch, progress)
    assert [d.clip_id for d in detections] == [c.clip_id for c in test[1:]]
    assert len(progress.problems) == 1 and progress.problems[0].startswith("broken: skipped")


def test_settings_are_checked_and_typed():
    assert make_config("knn", parse_settings(["k=5", "domain_norm=false"])).k == 5
    assert make_config("knn", {"domain_norm": "false"}).domain_norm is False
    with pytest.raises(EarmarkError, match="no setting 'kk'"):
        make_config("knn", {"kk": "5"})
    with pytest.raises(EarmarkError, match="not a valid int"):
        make_config("knn", {"k": "three"})
    with pytest.raises(EarmarkError, match="mode must be one of"):
        make_config("dcase_ae", {"mode": "fancy"})
    with pytest.raises(EarmarkError, match="unknown detector"):
        make_config("nope")


def test_the_threshold_is_the_90th_percentile_of_a_gamma_fitted_to_training_scores():
    import scipy.stats

    scores = scipy.stats.gamma.rvs(3.0, loc=1.0, scale=0.5, size=4000, random_state=0)
    # The fitted gamma's 90th percentile is close to the true one (3.0 shape, loc 1, scale 0.5).
    assert gamma_threshold(scores, 0.9) == pytest.approx(scipy.stats.gamma.ppf(0.9, 3.0, loc=1.0, scale=0.5), rel=0.02)
    assert gamma_threshold(np.array([2.0, 2.0, 2.0]), 0.9) == 2.0


def test_a_threshold_from_a_few_scores_stands_above_them_all():
    """With 4 held-out scores no quantile of them keeps 90 % of unseen normals below: the threshold is the
    largest score plus their spread. From 9 scores on the fitted gamma stands, as the baseline's."""
    rng = np.random.default_rng(0)
    few = np.array([3.7, 4.1, 4.6, 5.5])
    assert gamma_threshold(few, 0.9) == pytest.approx(5.5 + few.std(ddof=1))
    # Unseen normals of the same distribution: about one in five exceeds the threshold, not most of them.
    population = rng.gamma(3.0, 0.5, size=(2000, 5)) + 1.0
    flagged = [np.mean(row[4] > gamma_threshold(row[:4], 0.9)) for row in population]
    assert np.mean(flagged) < 0.2
    many = rng.gamma(3.0, 0.5, size=40) + 1.0
    assert gamma_threshold(many, 0.9) < many.max()


@pytest.mark.parametrize("count", [13, 20, 53])
def test_one_score_far_below_the_rest_does_not_lift_the_threshold_above_them_all(count):
    """Held-out scores of source clips and 3 target clips, one of those measured at -97 spreads (two
    near-identical others set its spread): the fitted gamma put the 90th percentile at 20 where the scores end
    below 2, so nothing was ever flagged. Now the threshold lies among the scores, as a 90th percentile does
    (13 scores: this test set's groups; 20: 10 + 10 clips; 53: 50 + 3)."""
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.0, 0.7, size=count - 1), [-97.0]])
    threshold = gamma_threshold(scores, 0.9)
    assert np.sort(scores)[-max(3, count // 6)] < threshold <= scores.max()
    unseen = rng.normal(0.0, 0.7, size=4000)
    assert 0.02 < np.mean(unseen > threshold) < 0.25


def test_the_auto_encoder_switches_mode_without_training_again(toy_project, tmp_path):
    clips, test = _group(toy_project), _group(toy_project, "test")
    switched = _detector("dcase_ae", tmp_path)
    switched.fit(clips)
    switched.switch_mode("mahalanobis", clips)
    fitted = _detector("dcase_ae", tmp_path, mode="mahalanobis")
    fitted.fit(clips)  # same seed, same network: switching must equal fitting in that mode
    np.testing.assert_allclose(
        [d.score for d in switched.score(test)], [d.score for d in fitted.score(test)], rtol=1e-4
    )
    assert switched.threshold == pytest.approx(fitted.threshold, rel=1e-4)
