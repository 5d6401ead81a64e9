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
    assert len(lanes["frame_scores"]) == len(lanes["frame_times"]) > 0

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

    found = runs.score_with_group(session, "fan/section_00", [clip])
    assert set(found) == {"dcase_ae", "knn"}
    stored = results.clip_scores(toy_project, clip.clip_id)[clip.clip_id]
    latest = results.latest_models(toy_project, "knn")["fan/section_00"]
    assert stored["knn"].model_id == latest.model_id and stored["knn"].score == pytest.approx(found["knn"].score)
    assert results.load_lanes(toy_project, stored["knn"].map_artifact)["frame_scores"].size > 0
    with pytest.raises(EarmarkError, match="no detector is fitted for valve/section_01"):
        runs.score_with_group(session, "valve/section_01", [clip])


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
