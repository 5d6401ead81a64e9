"""The figures behind the evaluation table: the score sets are the rows `earmark evaluate` evaluates, a ROC
curve's area is the table's AUC of that domain, and a histogram holds every clip once, in the bin of its
score, split by truth and domain, with the threshold that decides (the adjusted one once set)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.detectors import runs
from engine.evaluation.curves import KINDS, histogram, roc_points, score_sets
from engine.evaluation.report import evaluate_project
from engine.jobs import Progress
from engine.store import Project, results, thresholds


@pytest.fixture(scope="module")
def scored_folder(tmp_path_factory, toy_dataset) -> Path:
    """The small synthetic set, every group fitted and its test clips scored by knn."""
    from engine.data.importers import import_source

    folder = tmp_path_factory.mktemp("curves") / "plant"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
        session = runs.Session(project, torch.device("cpu"))
        runs.fit(session, "knn", None, None, Progress())
        runs.score(session, "knn", "test", None, Progress())
    return folder


def test_score_sets_are_the_rows_evaluate_counts_and_roc_areas_are_its_aucs(scored_folder):
    with Project.open(scored_folder) as project:
        sets = score_sets(project)
        [report] = evaluate_project(project)
        models = results.latest_models(project, "knn")
    assert [(s.machine_type, s.section_id) for s in sets] == [(r.machine_type, r.section_id) for r in report.sections]
    assert sum(len(s.clip_ids) for s in sets) == report.clips
    for score_set, section in zip(sets, report.sections, strict=True):
        assert len(score_set.clip_ids) == section.clips == len(score_set.scores) == len(score_set.is_anomaly)
        record = models[f"{score_set.machine_type}/section_{score_set.section_id}"]
        assert score_set.model_id == record.model_id and score_set.threshold == record.threshold
        assert np.isfinite(score_set.normalised).all()
        for domain, expected in (("source", section.auc_source), ("target", section.auc_target)):
            fpr, tpr, cut = roc_points(score_set, domain)
            if math.isnan(expected):
                assert fpr.size == 0
                continue
            assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
            assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-9)
            # a point's threshold flags the clips scoring at or above it
            middle = len(cut) // 2
            assert tpr[middle] == pytest.approx(np.mean(score_set.scores[score_set.is_anomaly] >= cut[middle]))


def test_a_histogram_holds_every_clip_once_in_the_bin_of_its_score(scored_folder):
    with Project.open(scored_folder) as project:
        score_set = score_sets(project, ["knn"])[0]
    found = histogram(score_set, bins=12)
    assert len(found.edges) == 13 and len(found.clip_ids_by_bin) == 12
    assert list(found.counts_by_kind) == list(KINDS)
    assert sum(int(c.sum()) for c in found.counts_by_kind.values()) == len(score_set.clip_ids)
    assert sorted(c for b in found.clip_ids_by_bin for c in b) == sorted(score_set.clip_ids)
    score_of = dict(zip(score_set.clip_ids, score_set.scores, strict=True))
    for index, members in enumerate(found.clip_ids_by_bin):
        for clip_id in members:
            assert found.edges[index] <= score_of[clip_id] <= found.edges[index + 1]
    kind_of = {
        c: f"{'anomaly' if a else 'normal'} {d}"
        for c, a, d in zip(score_set.clip_ids, score_set.is_anomaly, score_set.domains, strict=True)
    }
    for kind in KINDS:
        expected = np.zeros(12, dtype=int)
        for index, members in enumerate(found.clip_ids_by_bin):
            expected[index] = sum(kind_of[c] == kind for c in members)
        assert found.counts_by_kind[kind].tolist() == expected.tolist()
    assert found.counts_by_kind["anomaly source"].sum() > 0 and found.counts_by_kind["normal target"].sum() > 0


def test_a_score_set_carries_the_adjusted_threshold(scored_folder, tmp_path):
    folder = shutil.copytree(scored_folder, tmp_path / "plant")
    with Project.open(folder) as project:
        first, *others = score_sets(project)
        thresholds.set_threshold(project, first.model_id, 0.125)
        again = score_sets(project)
    assert again[0].threshold == 0.125 and again[0].model_id == first.model_id
    assert [s.threshold for s in again[1:]] == [s.threshold for s in others]  # the other groups keep theirs


def test_one_class_only_gives_an_empty_curve(scored_folder):
    with Project.open(scored_folder) as project:
        score_set = score_sets(project)[0]
    keep = ~score_set.is_anomaly
    score_set.clip_ids = [c for c, k in zip(score_set.clip_ids, keep, strict=True) if k]
    score_set.domains = [d for d, k in zip(score_set.domains, keep, strict=True) if k]
    score_set.is_anomaly, score_set.scores = score_set.is_anomaly[keep], score_set.scores[keep]
    fpr, tpr, cut = roc_points(score_set, None)
    assert fpr.size == tpr.size == cut.size == 0
