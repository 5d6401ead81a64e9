"""Normalised scores kept with the project: fitted and scored from the terminal, each clip's normalised score
is stored beside its raw score, written to the run's scores.csv and printed by `earmark scores`; a project
made before normalised scores existed opens, migrates, and shows none for its old scores."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3

import numpy as np
import pytest

from engine.cli import main as earmark
from engine.store import Project, results
from engine.store.migrations import LATEST_VERSION, schema_version

GROUP = "fan/section_00"


@pytest.fixture(scope="module")
def scored(tmp_path_factory, toy_dataset):
    """The small synthetic set, fan section 00 fitted and scored by knn from the terminal."""
    folder = tmp_path_factory.mktemp("normalised") / "plant"
    assert earmark(["new", str(folder)]) == 0
    assert earmark(["import", str(folder), str(toy_dataset)]) == 0
    assert earmark(["fit", str(folder), "--detector", "knn", "--group", GROUP]) == 0
    assert earmark(["score", str(folder), "--detector", "knn", "--group", GROUP]) == 0
    return folder


def test_stored_normalised_scores_put_normal_clips_near_zero_and_anomalies_higher(scored):
    with Project.open(scored) as project:
        rows = results.latest_scores(project, detector="knn", split="test")
    assert rows and all(r.normalised is not None and np.isfinite(r.normalised) for r in rows)
    normal = [r.normalised for r in rows if r.label == "normal"]
    anomaly = [r.normalised for r in rows if r.label == "anomaly"]
    assert abs(np.median(normal)) < 1.5
    assert np.median(anomaly) > np.median(normal) + 1.0
    # The window reads the same value for a clip.
    with Project.open(scored) as project:
        by_clip = results.clip_scores(project, rows[0].clip_id)
    assert by_clip[rows[0].clip_id]["knn"].normalised == pytest.approx(rows[0].normalised)


def test_the_runs_scores_csv_and_earmark_scores_carry_the_normalised_column(scored, capsys):
    [run] = sorted((scored / "artifacts" / "runs" / "knn").iterdir())
    written = {r["clip_id"]: r for r in csv.DictReader(open(run / "scores.csv"))}
    capsys.readouterr()
    assert earmark(["scores", str(scored), "--detector", "knn", "--split", "test"]) == 0
    printed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert printed and set(written) == {r["clip_id"] for r in printed}
    for row in printed:
        assert float(row["normalised"]) == pytest.approx(float(written[row["clip_id"]]["normalised"]), rel=1e-3)
    assert earmark(["scores", str(scored), "--detector", "knn", "--split", "test", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert all(isinstance(r["normalised"], float) for r in records)


def test_a_project_from_before_normalised_scores_opens_migrates_and_prints_empty_cells(scored, tmp_path, capsys):
    old = shutil.copytree(scored, tmp_path / "old")
    # The project as schema 4 wrote it: scores without the column.
    with sqlite3.connect(old / "project.sqlite") as db:
        db.execute("ALTER TABLE scores DROP COLUMN normalised")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.close()
    with Project.open(old) as project:
        assert schema_version(project.db) == LATEST_VERSION >= 5
        rows = results.latest_scores(project, detector="knn")
    assert rows and all(r.normalised is None for r in rows)
    capsys.readouterr()
    assert earmark(["scores", str(old), "--detector", "knn", "--split", "test"]) == 0
    printed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert printed and all(r["normalised"] == "" for r in printed)
    # Scoring again fills them in.
    assert earmark(["score", str(old), "--detector", "knn", "--group", GROUP]) == 0
    with Project.open(old) as project:
        assert all(r.normalised is not None for r in results.latest_scores(project, detector="knn", split="test"))
