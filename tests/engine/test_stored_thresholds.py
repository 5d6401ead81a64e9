"""Thresholds a user adjusts per model, kept in the models table: the fitted one stays, the decisions of the
model's stored scores follow the new one at once, evaluation and later scoring use it, undo and reset bring
the fitted one back, and a target false-positive rate picks the threshold from the held-out training normals.
A project from before the columns opens, keeps its frame thresholds (read from model.json once) and works."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.detectors import runs
from engine.errors import EarmarkError
from engine.evaluation.report import evaluate_project
from engine.jobs import Progress
from engine.store import Project, results, thresholds
from engine.store.migrations import LATEST_VERSION, schema_version

GROUP = "fan/section_00"


@pytest.fixture(scope="module")
def fitted_folder(tmp_path_factory, toy_dataset) -> Path:
    """The small synthetic set, fan section 00 fitted and its test clips scored by knn."""
    from engine.data.importers import import_source

    folder = tmp_path_factory.mktemp("thresholds") / "plant"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
        session = runs.Session(project, torch.device("cpu"))
        runs.fit(session, "knn", None, GROUP, Progress())
        runs.score(session, "knn", "test", GROUP, Progress())
    return folder


@pytest.fixture
def plant(fitted_folder, tmp_path) -> Path:
    return shutil.copytree(fitted_folder, tmp_path / "plant")


def stored(project: Project, model_id: int) -> dict[str, tuple[float, bool]]:
    rows = project.db.execute("SELECT clip_id, score, decision FROM scores WHERE model_id = ?", [model_id])
    return {clip: (score, bool(decision)) for clip, score, decision in rows.fetchall()}


def test_setting_a_threshold_recomputes_the_groups_decisions_and_keeps_the_fitted_one(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        fitted = record.threshold
        before = stored(project, record.model_id)
        scores = sorted(s for s, _ in before.values())
        new = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # half the clips above
        change = thresholds.set_threshold(project, record.model_id, new)

        after = stored(project, record.model_id)
        assert change.old == pytest.approx(fitted) and change.new == new
        assert all(decision == (score > new) for score, decision in after.values())
        assert sum(d for _, d in after.values()) == len(scores) // 2
        assert change.changed_clips == sorted(c for c in before if before[c][1] != after[c][1])
        assert change.changed_clips  # the median moves some decisions away from the fitted threshold's
        again = results.model(project, record.model_id)
        assert again.threshold == fitted and again.adjusted_threshold == new and again.threshold_set_by == "value"
        assert thresholds.effective_threshold(again) == new
        # Evaluation reads the stored decisions: its recall follows the new threshold.
        [report] = evaluate_project(project, ["knn"])
        section = next(s for s in report.sections if s.section_id == "00" and s.machine_type == "fan")
        source = [c for c, (s, d) in after.items() if project.clip(c).domain == "source"]
        flagged = [c for c in source if after[c][1] and project.clip(c).label == "anomaly"]
        anomalies = [c for c in source if project.clip(c).label == "anomaly"]
        assert section.recall_source == pytest.approx(len(flagged) / len(anomalies))

        # Undo is setting the old value back: the fitted state and the original decisions return.
        undo = thresholds.set_threshold(project, record.model_id, change.old)
        assert stored(project, record.model_id) == before
        assert sorted(undo.changed_clips) == change.changed_clips
        assert results.model(project, record.model_id).adjusted_threshold is None


def test_reset_goes_back_to_the_fitted_threshold(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        before = stored(project, record.model_id)
        thresholds.set_threshold(project, record.model_id, -1e9)  # everything flagged
        assert all(d for _, d in stored(project, record.model_id).values())
        change = thresholds.reset_threshold(project, record.model_id)
        assert change.new == record.threshold and change.old == -1e9
        assert stored(project, record.model_id) == before
        assert results.model(project, record.model_id).adjusted_threshold is None


def test_a_false_positive_rate_picks_the_threshold_from_the_held_out_training_normals(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        held = thresholds.held_out_scores(project, record)
        assert held.size >= 5
        for fpr in (0.0, 0.1, 0.3):
            value = thresholds.threshold_for_fpr(project, record.model_id, fpr)
            assert np.mean(held > value) <= fpr
            # the tightest such threshold: one score lower flags more than asked for
            lower = held[held < value]
            if lower.size:
                assert np.mean(held > lower.max()) > fpr
        change = thresholds.set_threshold(project, record.model_id, value, set_by="fpr", fpr=0.3)
        again = results.model(project, record.model_id)
        assert (again.threshold_set_by, again.threshold_fpr, again.adjusted_threshold) == ("fpr", 0.3, change.new)
        with pytest.raises(EarmarkError, match="between 0 and 1"):
            thresholds.threshold_for_fpr(project, record.model_id, 5)


def test_a_model_without_held_out_scores_says_so(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        path = results.model_folder(project, record) / "model.json"
        meta = json.loads(path.read_text())
        meta.pop("held_out")
        path.write_text(json.dumps(meta))
        with pytest.raises(EarmarkError, match="no held-out training-normal scores"):
            thresholds.threshold_for_fpr(project, record.model_id, 0.05)


def test_scoring_after_an_adjustment_decides_by_the_adjusted_threshold(plant):
    with Project.open(plant) as project:
        session = runs.Session(project, torch.device("cpu"))
        record = results.latest_models(project, "knn")[GROUP]
        session.model(record)  # loaded and warm before the change, as in the window
        scores = sorted(s for s, _ in stored(project, record.model_id).values())
        new = scores[len(scores) // 3]
        thresholds.set_threshold(project, record.model_id, new)
        run = runs.score(session, "knn", "test", GROUP, Progress())
        assert run.detections and all(d.decision == (d.score > new) for d in run.detections)
        assert all(decision == (score > new) for score, decision in stored(project, record.model_id).values())
        thresholds.reset_threshold(project, record.model_id)
        run = runs.score(session, "knn", "test", GROUP, Progress())
        assert all(d.decision == (d.score > record.threshold) for d in run.detections)


def test_unknown_models_bad_values_and_read_only_projects_change_nothing(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        before = stored(project, record.model_id)
        with pytest.raises(EarmarkError, match="no model 999"):
            thresholds.set_threshold(project, 999, 1.0)
        with pytest.raises(EarmarkError, match="finite"):
            thresholds.set_threshold(project, record.model_id, float("nan"))
        with pytest.raises(EarmarkError, match="fitted detectors: knn"):
            thresholds.find_model(project, "dcase_ae", GROUP)
        with pytest.raises(EarmarkError, match="its groups: fan/section_00"):
            thresholds.find_model(project, "knn", "pump/section_09")
        project.read_only = "it is on a read-only file system"
        with pytest.raises(EarmarkError, match="read-only"):
            thresholds.set_threshold(project, record.model_id, 0.0)
        project.read_only = None
        assert stored(project, record.model_id) == before
        assert results.model(project, record.model_id).adjusted_threshold is None


def test_new_models_keep_their_frame_threshold_in_the_models_table(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        saved = json.loads((results.model_folder(project, record) / "model.json").read_text())["frame_threshold"]
        assert record.frame_threshold == pytest.approx(saved)
        assert results.frame_threshold(project, record) == pytest.approx(saved)


def test_a_project_from_before_adjustable_thresholds_opens_and_keeps_its_frame_thresholds(plant):
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        saved = json.loads((results.model_folder(project, record) / "model.json").read_text())["frame_threshold"]
    with sqlite3.connect(plant / "project.sqlite") as db:  # the models table as schema 5 wrote it
        for column in (
            "adjusted_threshold",
            "threshold_set_by",
            "threshold_fpr",
            "threshold_set_at",
            "frame_threshold",
        ):
            db.execute(f"ALTER TABLE models DROP COLUMN {column}")
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    db.close()
    with Project.open(plant) as project:
        assert schema_version(project.db) == LATEST_VERSION >= 6
        old = results.latest_models(project, "knn")[GROUP]
        assert old.frame_threshold == pytest.approx(saved)  # copied from model.json by the migration
        assert old.adjusted_threshold is None and thresholds.effective_threshold(old) == old.threshold
        change = thresholds.set_threshold(project, old.model_id, old.threshold + 1.0)
        assert change.old == old.threshold


def test_enrolling_clips_keeps_the_threshold_the_user_chose(plant):
    """Enrolment makes a new model from the group's newest: a threshold set by a false-positive rate is chosen
    again by that rate from the new held-out scores, one set by value keeps its value (not the fitted one)."""
    with Project.open(plant) as project:
        session = runs.Session(project, torch.device("cpu"))
        record = results.latest_models(project, "knn")[GROUP]
        value = thresholds.threshold_for_fpr(project, record.model_id, 0.3)
        thresholds.set_threshold(project, record.model_id, value, set_by="fpr", fpr=0.3)
        targets = [c.clip_id for c in project.clips(split="test") if c.label == "normal" and c.domain == "target"]
        (first,) = runs.enrol(session, "knn", targets[:1], Progress())
        assert (first.threshold_set_by, first.threshold_fpr) == ("fpr", 0.3)
        assert first.adjusted_threshold == thresholds.threshold_for_fpr(project, first.model_id, 0.3)
        thresholds.set_threshold(project, first.model_id, 12.5)
        (second,) = runs.enrol(session, "knn", targets[1:2], Progress())
        assert (second.threshold_set_by, second.adjusted_threshold) == ("value", 12.5)
        assert thresholds.effective_threshold(second) == 12.5


def test_a_refit_keeps_the_threshold_the_user_chose_where_it_still_means_the_same(plant):
    """Fitting a group again replaces its model: a threshold set by a false-positive rate is chosen again by
    that rate from the new model's held-out scores; one set by value stays with the same settings, and gives
    way to the new fitted threshold with other settings (they may score on another scale)."""
    with Project.open(plant) as project:
        session = runs.Session(project, torch.device("cpu"))
        record = results.latest_models(project, "knn")[GROUP]
        thresholds.set_threshold(project, record.model_id, 7.25)
        (same,) = runs.fit(session, "knn", None, GROUP, Progress())
        assert (same.threshold_set_by, same.adjusted_threshold) == ("value", 7.25)
        (other,) = runs.fit(session, "knn", {"k": 1}, GROUP, Progress())
        assert other.adjusted_threshold is None and thresholds.effective_threshold(other) == other.threshold
        thresholds.set_threshold(
            project, other.model_id, thresholds.threshold_for_fpr(project, other.model_id, 0.3), set_by="fpr", fpr=0.3
        )
        (back,) = runs.fit(session, "knn", None, GROUP, Progress())
        assert (back.threshold_set_by, back.threshold_fpr) == ("fpr", 0.3)
        assert back.adjusted_threshold == thresholds.threshold_for_fpr(project, back.model_id, 0.3)


def test_earmark_enrol_prints_the_threshold_that_decides(plant, capsys):
    from engine import cli

    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
        thresholds.set_threshold(project, record.model_id, 12.5)
        target = next(c.clip_id for c in project.clips(split="test") if c.label == "normal" and c.domain == "target")
    assert cli.main(["enrol", str(plant), "--detector", "knn", target, "--device", "cpu"]) == 0
    assert "threshold 12.5 (set by value; fitted " in capsys.readouterr().out
