"""Detectors over a whole project, as the CLI and the GUI run them: one model per group in the models table,
scores in the scores table with each clip's frame scores on disk, run files, evaluation, export, enrolment,
and clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from engine.detectors import runs
from engine.errors import EarmarkError
from engine.evaluation.dcase_io import export_dcase, read_results
from engine.evaluation.report import evaluate_project, format_reports
from engine.jobs import RecordingProgress
from engine.store import results


def test_fit_score_evaluate_and_export_a_project(toy_project, tmp_path):
    session = runs.Session(toy_project)
    progress = RecordingProgress()
    fitted = runs.fit(session, "knn", {"k": "2"}, progress=progress)
    assert sorted(m.group_key for m in fitted) == sorted({c.group for c in toy_project.clips()})
    assert all(m.config["k"] == 2 and np.isfinite(m.threshold) for m in fitted)
    assert any("fan/section_00" in message for *_, message, _ in progress.updates)

    run = runs.score(session, "knn")
    test_clips = toy_project.clips(split="test")
    assert run.scored == len(test_clips)
    stored = results.latest_scores(toy_project, "knn")
    assert {r.clip_id for r in stored} == {c.clip_id for c in test_clips}
    lanes = results.load_lanes(toy_project, stored[0].map_artifact)
    assert len(lanes.frame_scores) == len(lanes.frame_times) > 0

    with open(run.folder / "scores.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(test_clips)
    metrics = json.loads((run.folder / "metrics.json").read_text())
    assert metrics["detector"] == "knn" and 0 <= metrics["official_score"] <= 1

    [report] = evaluate_project(toy_project)
    assert report.official == pytest.approx(metrics["official_score"])
    assert len(report.sections) == len(fitted)
    assert any(line.strip().startswith("knn") for line in format_reports([report]))

    written = export_dcase(toy_project, tmp_path / "out", "knn")["knn"]
    assert len(written) == 2 * len(fitted)
    rows = read_results(tmp_path / "out" / "anomaly_score_fan_section_00_test.csv")
    fan = [c for c in test_clips if c.group == "fan/section_00"]
    assert [name for name, _ in rows] == [c.path.rsplit("/", 1)[1] for c in fan]


def test_scores_of_several_detectors_export_into_one_folder_each(toy_project, tmp_path):
    session = runs.Session(toy_project)
    for detector, settings in (("knn", {}), ("dcase_ae", {"epochs": 2})):
        runs.fit(session, detector, settings, group="valve/section_01")
        runs.score(session, detector, group="valve/section_01")
    written = export_dcase(toy_project, tmp_path / "out")
    assert set(written) == {"dcase_ae", "knn"}
    for detector in written:
        assert sorted(p.name for p in (tmp_path / "out" / detector).iterdir()) == [
            "anomaly_score_valve_section_01_test.csv",
            "decision_result_valve_section_01_test.csv",
        ]
    assert {r.detector for r in evaluate_project(toy_project)} == {"dcase_ae", "knn"}


def test_enrolling_saves_a_new_model_that_later_scores_use(toy_project):
    session = runs.Session(toy_project)
    [first] = runs.fit(session, "knn", group="fan/section_01")
    # new target-domain normal clips (the training ones the model holds already)
    targets = [
        c.clip_id
        for c in toy_project.clips(split="test", domain="target", label="normal")
        if c.group == "fan/section_01"
    ]
    [enrolled] = runs.enrol(session, "knn", targets)
    assert enrolled.model_id > first.model_id and enrolled.metrics["enrolled_into"] == first.model_id
    assert enrolled.metrics["enrolled"] == len(targets)
    runs.score(session, "knn", group="fan/section_01")
    assert {r.model_id for r in results.latest_scores(toy_project, "knn")} == {enrolled.model_id}


def test_clear_errors_without_training_data_or_a_fitted_model(project, toy_project):
    with pytest.raises(EarmarkError, match="no normal training clips"):
        runs.fit(runs.Session(project), "knn")
    with pytest.raises(EarmarkError, match="no fitted knn model"):
        runs.score(runs.Session(toy_project), "knn")
    with pytest.raises(EarmarkError, match="group 'pump/section_00' has no normal training clips"):
        runs.fit(runs.Session(toy_project), "knn", group="pump/section_00")
    with pytest.raises(EarmarkError, match="no scores"):
        export_dcase(toy_project, "/tmp/never-written")


def test_a_group_without_a_model_is_reported_and_the_others_are_scored(toy_project):
    session = runs.Session(toy_project)
    runs.fit(session, "knn", group="fan/section_00")
    progress = RecordingProgress()
    run = runs.score(session, "knn", progress=progress)
    assert run.groups == ["fan/section_00"]
    assert any("bearing/section_00" in line and "not scored" in line for line in progress.problems)


def test_scoring_a_group_or_split_without_clips_says_so(toy_project):
    session = runs.Session(toy_project)
    runs.fit(session, "knn", group="fan/section_00")
    with pytest.raises(EarmarkError, match="no test clips to score in group 'pump/section_00'"):
        runs.score(session, "knn", group="pump/section_00")


def test_a_file_without_metadata_is_scored_by_the_models_of_the_group_the_user_picks(toy_project, tmp_path):
    from engine.data.importers import import_files
    from tests.helpers import write_wav

    session = runs.Session(toy_project)
    for detector, settings in (("knn", {}), ("dcase_ae", {"epochs": 1})):
        runs.fit(session, detector, settings, group="fan/section_00")
    dropped = write_wav(tmp_path / "dropped.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    report = import_files(toy_project, [dropped], source="inbox")
    clip = toy_project.clip(report.clip_ids[0])
    assert clip.machine_type is None

    [(clip_id, found)] = runs.score_with_group(session, "fan/section_00", [clip]).items()
    assert clip_id == clip.clip_id and set(found) == {"dcase_ae", "knn"}
    stored = results.clip_scores(toy_project, clip.clip_id)[clip.clip_id]
    latest = results.latest_models(toy_project, "knn")["fan/section_00"]
    assert stored["knn"].model_id == latest.model_id and stored["knn"].score == pytest.approx(found["knn"].score)
    assert results.load_lanes(toy_project, stored["knn"].map_artifact).frame_scores.size > 0
    with pytest.raises(EarmarkError, match="no detector is fitted for valve/section_01"):
        runs.score_with_group(session, "valve/section_01", [clip])


def test_scoring_several_files_with_a_group_gives_every_files_detections_from_one_call_per_model(
    toy_project, tmp_path, monkeypatch
):
    from engine.data.importers import import_files
    from engine.detectors.base import Detector
    from tests.helpers import write_wav

    session = runs.Session(toy_project)
    runs.fit(session, "knn", {}, group="fan/section_00")
    rng = np.random.default_rng(1)
    paths = [
        write_wav(tmp_path / f"drop_{i}.wav", rng.normal(0, 0.05 * (i + 1), 16000).astype(np.float32)) for i in range(5)
    ]
    clips = [toy_project.clip(c) for c in import_files(toy_project, paths, source="inbox").clip_ids]
    calls, score = [], Detector.score
    monkeypatch.setattr(
        Detector, "score", lambda self, batch, progress=None: calls.append(len(batch)) or score(self, batch, progress)
    )

    found = runs.score_with_group(session, "fan/section_00", clips)
    assert calls == [5]  # one pass over the five files
    assert list(found) == [c.clip_id for c in clips] and all(set(d) == {"knn"} for d in found.values())
    stored = results.clip_scores(toy_project)
    for clip in clips:
        detection = found[clip.clip_id]["knn"]
        assert detection.clip_id == clip.clip_id and stored[clip.clip_id]["knn"].score == pytest.approx(detection.score)


def test_a_stored_detection_comes_back_as_it_was_written(toy_project):
    from engine.data.detection import Detection

    rng = np.random.default_rng(0)
    written = Detection(
        "clip_a",
        2.5,
        True,
        rng.random(7).astype(np.float32),
        np.linspace(0, 1, 7),
        rng.random((3, 4)).astype(np.float32),
        np.array([[0, 100], [100, 400], [400, 8000]], dtype=np.float64),
        np.array([[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]]),
        regions=[(0.25, 0.5, 0.9)],
    )
    artifact = results.save_lanes(toy_project, 1, "abc", written)
    read = results.load_lanes(toy_project, artifact, "clip_a", score=2.5, decision=True, model_id=1)
    assert read.clip_id == "clip_a" and read.score == 2.5 and read.decision and read.model_id == 1
    assert read.regions == written.regions
    for name in ("frame_scores", "frame_times", "anomaly_map", "map_freq_spans_hz", "map_time_spans_s"):
        assert np.array_equal(getattr(read, name), getattr(written, name))
    # A detection without a map stores none, and reads back without one.
    written.anomaly_map = None
    assert set(written.to_arrays()) == {"frame_scores", "frame_times", "regions"}
    assert Detection.from_arrays(written.to_arrays()).anomaly_map is None


def test_a_session_keeps_the_newest_model_of_each_group_loaded(toy_project):
    session = runs.Session(toy_project)
    [first] = runs.fit(session, "knn", group="fan/section_00")
    model = session.model(first)
    assert session.model(first) is model  # warm: not read from disk again
    [second] = runs.fit(session, "knn", {"k": "3"}, group="fan/section_00")
    newer = session.model(second)
    assert newer is not model and newer.config.k == 3
    assert session.model(second) is newer
    # Enrolling changes a copy, so the loaded model still matches its record.
    clips = [
        c.clip_id
        for c in toy_project.clips(machine_type="fan", section_id="00", domain="target", split="test", label="normal")
    ][:1]
    runs.enrol(session, "knn", clips)
    assert session.model(second) is newer and "enrolled" not in newer.info
