"""Results out of the command line for other programs and for labelling: `earmark scores`, `earmark evaluate
--format csv|json`, and `earmark propose` storing what the window's P key stores."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil

import pytest

from engine.cli import main as earmark
from engine.evaluation.report import evaluate_project
from engine.labels import proposals
from engine.store import Project, labels, results

GROUP = "fan/section_00"


@pytest.fixture(scope="module")
def scored(tmp_path_factory, toy_dataset):
    """A project of the small synthetic set whose fan section 00 is fitted and scored by knn and
    patch_memory (every split), as a user does it from the terminal."""
    folder = tmp_path_factory.mktemp("scored") / "plant"
    assert earmark(["new", str(folder)]) == 0
    assert earmark(["import", str(folder), str(toy_dataset)]) == 0
    for detector in ("knn", "patch_memory"):
        assert earmark(["fit", str(folder), "--detector", detector, "--group", GROUP]) == 0
        assert earmark(["score", str(folder), "--detector", detector, "--split", "all", "--group", GROUP]) == 0
    return folder


@pytest.fixture
def copy(scored, tmp_path):
    """A copy of the scored project to change."""
    return shutil.copytree(scored, tmp_path / "plant")


def test_scores_as_csv_give_every_scored_clip_with_its_decision_and_threshold(scored, capsys):
    capsys.readouterr()
    assert earmark(["scores", str(scored), "--detector", "knn"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    with Project.open(scored) as project:
        stored = results.latest_scores(project, detector="knn")
        model = results.latest_models(project, "knn")[GROUP]
        clips = {c.clip_id: c for c in project.clips(machine_type="fan", section_id="00")}
    assert list(rows[0]) == [
        "clip_id",
        "file",
        "machine",
        "section",
        "domain",
        "split",
        "label",
        "detector",
        "model",
        "score",
        "decision",
        "threshold",
        "normalised",
    ]
    assert sorted(r["clip_id"] for r in rows) == sorted(clips) == sorted(s.clip_id for s in stored)
    assert {r["split"] for r in rows} == {"train", "test", "supplemental"} & {c.split for c in clips.values()}
    for row in rows:
        clip = clips[row["clip_id"]]
        assert (row["machine"], row["section"], row["domain"], row["label"]) == (
            "fan",
            "00",
            clip.domain,
            clip.label or "",
        )  # a supplemental clip has no label: an empty cell
        assert row["detector"] == "knn" and int(row["model"]) == model.model_id
        assert float(row["threshold"]) == model.threshold
        assert row["decision"] == ("anomaly" if float(row["score"]) > model.threshold else "normal")
    assert {r["decision"] for r in rows if r["split"] == "test"} == {"anomaly", "normal"}


def test_scores_as_json_hold_the_same_records_for_both_detectors(scored, capsys):
    capsys.readouterr()
    assert earmark(["scores", str(scored), "--split", "test"]) == 0
    as_csv = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert earmark(["scores", str(scored), "--split", "test", "--format", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert {r["detector"] for r in as_json} == {"knn", "patch_memory"}
    assert {r["split"] for r in as_json} == {"test"}
    assert len(as_json) == len(as_csv)
    for a, b in zip(as_json, as_csv, strict=True):
        assert a["clip_id"] == b["clip_id"] and a["score"] == float(b["score"]) and a["decision"] == b["decision"]
        assert isinstance(a["score"], float) and isinstance(a["model"], int)


def test_scores_of_a_detector_never_run_say_what_to_do(scored, capsys):
    assert earmark(["scores", str(scored), "--detector", "dcase_ae"]) == 1
    err = capsys.readouterr().err
    assert "no dcase_ae scores" in err and "earmark score" in err


def test_evaluate_as_csv_and_json_gives_the_figures_of_each_section(scored, capsys):
    capsys.readouterr()
    assert earmark(["evaluate", str(scored), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert earmark(["evaluate", str(scored), "--format", "json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    with Project.open(scored) as project:
        expected = {r.detector: r for r in evaluate_project(project)}

    assert [(r["detector"], r["machine"], r["section"]) for r in rows] == [
        ("knn", "fan", "00"),
        ("patch_memory", "fan", "00"),
    ]
    assert [r["detector"] for r in reports] == ["knn", "patch_memory"]
    for row, report in zip(rows, reports, strict=True):
        truth = expected[row["detector"]]
        section = truth.sections[0]
        for name in (
            "auc_source",
            "auc_target",
            "pauc",
            "precision_source",
            "recall_source",
            "f1_source",
            "precision_target",
            "recall_target",
            "f1_target",
        ):
            assert float(row[name]) == report["sections"][0][name] == getattr(section, name)
        assert float(row["official_score"]) == report["official_score"] == truth.official
        assert 0 <= truth.official <= 1 and int(row["clips"]) == report["clips"] == truth.clips
        assert report["sections"][0]["machine"] == "fan" and report["sections"][0]["section"] == "00"


def test_evaluate_text_is_still_the_default(scored, capsys):
    capsys.readouterr()
    assert earmark(["evaluate", str(scored)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["detector", "machine", "section"]


def test_an_undefined_figure_is_empty_in_csv_and_null_in_json(copy, capsys):
    with Project.open(copy) as project:  # no anomalous clips left: every AUC is undefined
        project.db.execute("UPDATE clips SET label = 'normal'")
    capsys.readouterr()
    assert earmark(["evaluate", str(copy), "--detector", "knn", "--format", "csv"]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert earmark(["evaluate", str(copy), "--detector", "knn", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert row["auc_source"] == row["pauc"] == row["official_score"] == ""
    assert report["sections"][0]["auc_source"] is None and report["official_score"] is None


def test_propose_dry_run_prints_each_clip_and_stores_nothing(scored, capsys):
    capsys.readouterr()
    assert earmark(["propose", str(scored), "--detector", "patch_memory", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with Project.open(scored) as project:
        scored_clips = [c for c, by in results.clip_scores(project).items() if "patch_memory" in by]
        assert labels.regions(project, kinds=("proposal",)) == []
    counts = {line.split(": ")[0]: int(line.split(": ")[1].split()[0]) for line in lines[:-1]}
    assert sorted(counts) == sorted(scored_clips)
    assert lines[-1] == (
        f"Found {sum(counts.values())} proposal(s) on {len(counts)} clip(s) from patch_memory (dry run: nothing stored)"
    )
    assert sum(counts.values()) > 0


def test_propose_stores_what_the_window_would_propose(copy, capsys):
    capsys.readouterr()
    assert earmark(["propose", str(copy), "--detector", "patch_memory"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with Project.open(copy) as project:
        stored = labels.regions(project, kinds=("proposal",))
        by_clip = {line.split(": ")[0]: int(line.split(": ")[1].split()[0]) for line in lines[:-1]}
        busiest = max(by_clip, key=by_clip.get)
        mine = [(r.start_s, r.end_s, r.label, r.model_id) for r in stored if r.clip_id == busiest]
        # The P key on that clip, with the panel's default levels, replaces them with the same regions.
        window = proposals.propose_clip(project, busiest, "patch_memory")
    assert lines[-1] == f"Stored {len(stored)} proposal(s) on {len(by_clip)} clip(s) from patch_memory"
    assert len(stored) == sum(by_clip.values()) > 0
    assert mine == [(r.start_s, r.end_s, r.label, r.model_id) for r in window]


def test_propose_on_chosen_clips_with_other_levels(copy, capsys):
    with Project.open(copy) as project:
        anomalous = [c.clip_id for c in project.clips(machine_type="fan", section_id="00", label="anomaly")][:2]
    capsys.readouterr()
    assert (
        earmark(
            [
                "propose",
                str(copy),
                "--detector",
                "patch_memory",
                "--clip",
                *anomalous,
                "--on",
                "0.5",
                "--off",
                "0.4",
                "--merge-gap",
                "0",
                "--label",
                "rattle",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    with Project.open(copy) as project:
        stored = labels.regions(project, kinds=("proposal",))
    assert [line.split(": ")[0] for line in lines[:-1]] == anomalous
    assert {r.clip_id for r in stored} <= set(anomalous) and {r.label for r in stored} == {"rattle"}
    assert all(not math.isnan(r.confidence) for r in stored)


def test_propose_with_an_off_level_above_the_on_level_is_refused(scored, capsys):
    assert earmark(["propose", str(scored), "--detector", "patch_memory", "--on", "1", "--off", "2"]) == 1
    assert "off ratio" in capsys.readouterr().err


def test_export_dcase_writes_through_a_linked_result_file(scored, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "results"
    out.mkdir()
    name = "anomaly_score_fan_section_00_test.csv"
    (out / name).symlink_to(elsewhere / name)

    assert earmark(["export", "dcase", str(scored), str(out), "--detector", "knn"]) == 0

    assert (out / name).is_symlink()
    rows = (elsewhere / name).read_text().splitlines()
    with Project.open(scored) as project:
        tests = results.latest_scores(project, detector="knn", split="test")
    assert len(rows) == len(tests) and rows[0].endswith(repr(float(tests[0].score)))
    assert sorted(p.name for p in elsewhere.iterdir()) == [name]
