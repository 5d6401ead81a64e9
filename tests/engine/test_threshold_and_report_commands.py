"""The analyst from the terminal: `earmark threshold` sets a group's threshold by value or by false-positive
rate, or resets it, prints old -> new and how many decisions changed, and the evaluation follows; unknown
detectors or groups and read-only or busy projects are refused in one line with nothing changed.
`earmark report` writes one self-contained HTML page (the figures of `earmark evaluate`, inline SVG figures,
thresholds, models, localization), or the same tables as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from engine.cli import main as earmark
from engine.store import Project, results
from tests.damage import read_only_mount

GROUP = "fan/section_00"


@pytest.fixture(scope="module")
def scored(tmp_path_factory, toy_dataset) -> Path:
    """The small synthetic set; fan section 00 fitted and scored by knn, with the terminal's commands."""
    folder = tmp_path_factory.mktemp("commands") / "plant"
    assert earmark(["new", str(folder)]) == 0
    assert earmark(["import", str(folder), str(toy_dataset)]) == 0
    assert earmark(["fit", str(folder), "--detector", "knn", "--group", GROUP]) == 0
    assert earmark(["score", str(folder), "--detector", "knn", "--group", GROUP]) == 0
    return folder


@pytest.fixture
def plant(scored, tmp_path) -> Path:
    return shutil.copytree(scored, tmp_path / "plant")


def decisions(folder: Path) -> dict[str, bool]:
    with Project.open(folder) as project:
        return {r.clip_id: r.decision for r in results.latest_scores(project, detector="knn")}


def evaluate_json(folder: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert earmark(["evaluate", str(folder), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_threshold_by_value_fpr_and_reset_prints_the_change_and_the_evaluation_follows(plant, capsys):
    before, figures = decisions(plant), evaluate_json(plant, capsys)
    with Project.open(plant) as project:
        fitted = results.latest_models(project, "knn")[GROUP].threshold
    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--value=-1e9"]) == 0
    out = capsys.readouterr().out
    flipped = sum(not d for d in before.values())
    assert f"threshold {fitted:.6g} -> -1e+09" in out and f"{flipped} decision(s) changed" in out
    assert all(decisions(plant).values())
    recall = evaluate_json(plant, capsys)[0]["sections"][0]
    assert recall["recall_source"] == recall["recall_target"] == pytest.approx(1.0)

    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--fpr", "0.1"]) == 0
    assert "at most 0.1 of its held-out training normals above it" in capsys.readouterr().out
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
    assert (record.threshold_set_by, record.threshold_fpr, record.threshold) == ("fpr", 0.1, fitted)

    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--reset"]) == 0
    assert f"-> {fitted:.6g} (the fitted threshold)" in capsys.readouterr().out
    assert decisions(plant) == before and evaluate_json(plant, capsys) == figures


def test_a_threshold_for_a_model_not_scored_yet_says_the_stored_decisions_are_the_older_ones(plant, capsys):
    """Fitted again but not scored since: the threshold goes to the newest model, whose scores are not stored
    yet, so no stored decision moves; the command says why and what to run, and scoring applies it."""
    assert earmark(["fit", str(plant), "--detector", "knn", "--group", GROUP]) == 0
    capsys.readouterr()
    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--value=-1e9"]) == 0
    said = capsys.readouterr()
    assert "0 decision(s) changed" in said.out
    assert "were last scored by an older knn model" in said.err and f"earmark score {plant}" in said.err
    assert earmark(["score", str(plant), "--detector", "knn", "--group", GROUP]) == 0
    assert all(decisions(plant).values())
    capsys.readouterr()
    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--reset"]) == 0
    assert "older" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["--detector", "dcase_ae", "--group", GROUP, "--value", "1"], "no dcase_ae model"),
        (["--detector", "knn", "--group", "pump/section_07", "--value", "1"], "knn has no model for group"),
        (["--detector", "knn", "--group", GROUP, "--fpr", "2"], "between 0 and 1"),
    ],
)
def test_unknown_detectors_groups_and_bad_rates_are_refused_in_one_line(plant, capsys, words, said):
    before = decisions(plant)
    capsys.readouterr()
    assert earmark(["threshold", str(plant), *words]) == 1
    err = capsys.readouterr().err
    assert err.startswith("earmark: error: ") and said in err and "Traceback" not in err
    assert decisions(plant) == before


def test_a_busy_project_is_refused_with_a_message_and_nothing_changes(plant, capsys, monkeypatch):
    monkeypatch.setattr("engine.store.project.BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr("engine.store.project.WRITE_WAIT_S", 0.3)
    before = decisions(plant)
    lock = sqlite3.connect(plant / "project.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--value=-1e9"]) == 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert "another Earmark process has been writing" in capsys.readouterr().err
    assert decisions(plant) == before


def test_a_read_only_project_is_refused_before_any_work(plant, tmp_path, capsys):
    with read_only_mount(plant, tmp_path / "mounted") as folder:
        assert earmark(["threshold", str(folder), "--detector", "knn", "--group", GROUP, "--value", "1"]) == 1
        assert "is read-only" in capsys.readouterr().err
        # The report only reads it.
        assert earmark(["report", str(folder), str(tmp_path / "r.html")]) == 0


def test_report_writes_one_self_contained_page_with_the_evaluate_figures(plant, tmp_path, capsys):
    assert earmark(["threshold", str(plant), "--detector", "knn", "--group", GROUP, "--fpr", "0.2"]) == 0
    figures = evaluate_json(plant, capsys)
    out = tmp_path / "report.html"
    assert earmark(["report", str(plant), str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from elsewhere
    section = figures[0]["sections"][0]
    for name in ("auc_source", "auc_target", "pauc", "f1_source"):
        assert f">{section[name]:.3f}<" in page
    assert f">{figures[0]['official_score']:.3f}<" in page
    svgs = re.findall(r"<svg .*?</svg>", page)
    assert len(svgs) == 3  # ROC source, ROC target, knn's histogram
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    with Project.open(plant) as project:
        record = results.latest_models(project, "knn")[GROUP]
    assert f">{record.threshold:.4f}<" in page and f">{record.adjusted_threshold:.4f}<" in page
    assert "set for FPR 0.2" in page and f"{record.metrics['trained_on']} normal clips" in page
    assert "Localization" in page


def test_report_as_json_and_csv_carries_the_same_tables(plant, tmp_path, capsys):
    figures = evaluate_json(plant, capsys)
    assert earmark(["report", str(plant), str(tmp_path / "r.json")]) == 0
    whole = json.loads((tmp_path / "r.json").read_text())
    assert whole["evaluation"] == figures
    assert [t["model"] for t in whole["thresholds"]] == [m["model"] for m in whole["models"]]
    assert earmark(["report", str(plant), str(tmp_path / "t.csv"), "--format", "csv"]) == 0
    capsys.readouterr()
    assert earmark(["evaluate", str(plant), "--format", "csv"]) == 0
    assert (tmp_path / "t.csv").read_text() == capsys.readouterr().out
    thresholds = list(csv.DictReader(io.StringIO((tmp_path / "t_thresholds.csv").read_text())))
    assert [r["group"] for r in thresholds] == [GROUP] and float(thresholds[0]["fitted"]) > 0
    assert (tmp_path / "t_models.csv").is_file() and (tmp_path / "t_localization.csv").is_file()


def test_report_on_an_unfitted_detector_says_what_is_fitted(plant, tmp_path, capsys):
    assert earmark(["report", str(plant), str(tmp_path / "r.html"), "--detector", "dcase_ae"]) == 1
    assert "fitted detectors: knn" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
