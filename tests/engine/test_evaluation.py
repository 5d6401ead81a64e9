"""The official DCASE figures agree with values worked out by hand, including the domain rule for AUC and the
standardised pAUC; result files have the official names and rows."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest

from engine.evaluation.dcase_io import read_results, result_names, write_results
from engine.evaluation.metrics import (
    ScoredClip,
    official_score,
    pauc,
    precision_recall_f1,
    section_result,
)


def _clips(rows):
    return [
        ScoredClip(f"c{i}", domain, anomaly, score, decision)
        for i, (domain, anomaly, score, decision) in enumerate(rows)
    ]


# source normals 0.1, 0.2; target normals 0.5, 0.6; a source anomaly 0.3 and a target anomaly 0.55
SECTION = _clips(
    [
        ("source", False, 0.1, False),
        ("source", False, 0.2, False),
        ("target", False, 0.5, True),
        ("target", False, 0.6, True),
        ("source", True, 0.3, True),
        ("target", True, 0.55, False),
    ]
)


def test_auc_per_domain_uses_that_domains_normals_and_every_anomaly_of_the_section():
    result = section_result("fan", "00", SECTION)
    # source: normals {0.1, 0.2} against anomalies {0.3, 0.55}: every pair is ordered right
    assert result.auc_source == pytest.approx(1.0)
    # target: normals {0.5, 0.6} against anomalies {0.3, 0.55}: only 0.55 > 0.5 of the four pairs
    assert result.auc_target == pytest.approx(0.25)


def test_pauc_is_the_standardised_partial_auc_over_both_domains():
    # Highest score is a normal clip: no true positives below FPR 0.1, raw area 0 -> 0.5 (1 - 0.005 / 0.095)
    assert section_result("fan", "00", SECTION).pauc == pytest.approx(0.5 * (1 - 0.005 / 0.095))
    # One of two anomalies above every normal: TPR 0.5 from FPR 0 -> raw area 0.05
    assert pauc([False] * 4 + [True, True], [0.1, 0.2, 0.3, 0.4, 0.9, 0.35]) == pytest.approx(
        0.5 * (1 + (0.05 - 0.005) / 0.095)
    )
    assert pauc([False, False, True], [0.1, 0.2, 0.3]) == pytest.approx(1.0)


def test_official_score_is_the_harmonic_mean_of_every_auc_and_pauc():
    first = section_result("fan", "00", SECTION)
    perfect = section_result(
        "fan",
        "01",
        _clips(
            [
                ("source", False, 0.0, False),
                ("target", False, 0.1, False),
                ("source", True, 1.0, True),
                ("target", True, 0.9, True),
            ]
        ),
    )
    values = [1.0, 0.25, 0.5 * (1 - 0.005 / 0.095), 1.0, 1.0, 1.0]
    assert official_score([first, perfect]) == pytest.approx(len(values) / sum(1 / v for v in values))


def test_a_zero_auc_is_floored_at_epsilon_instead_of_breaking_the_mean():
    reversed_ = section_result(
        "fan",
        "00",
        _clips(
            [
                ("source", False, 1.0, True),
                ("target", False, 0.9, True),
                ("source", True, 0.0, False),
                ("target", True, 0.1, False),
            ]
        ),
    )
    assert reversed_.auc_source == 0.0
    score = official_score([reversed_])
    assert 0.0 < score < 10 * sys.float_info.epsilon


def test_decision_figures_are_per_domain_over_that_domains_clips():
    result = section_result("fan", "00", SECTION)
    # source: the anomaly (0.3) is flagged, no normal is -> precision 1, recall 1
    assert (result.precision_source, result.recall_source, result.f1_source) == pytest.approx((1.0, 1.0, 1.0))
    # target: both normals flagged, the anomaly missed -> all zero
    assert (result.precision_target, result.recall_target, result.f1_target) == pytest.approx((0.0, 0.0, 0.0))
    assert precision_recall_f1([True, True, False, False], [True, False, True, False]) == pytest.approx((0.5, 0.5, 0.5))


def test_a_domain_without_clips_has_no_decision_figures_rather_than_zeros():
    """Plain recordings are often all of one domain: their target figures are undefined, not a failure."""
    source_only = section_result("pump", "00", _clips([("source", False, 0.1, False), ("source", True, 0.9, True)]))
    assert (source_only.precision_source, source_only.f1_source) == pytest.approx((1.0, 1.0))
    assert all(
        math.isnan(v)
        for v in (
            source_only.precision_target,
            source_only.recall_target,
            source_only.f1_target,
            source_only.auc_target,
        )
    )


def test_a_section_without_anomalies_has_no_auc_and_is_left_out_of_the_official_score():
    only_normals = section_result("fan", "02", _clips([("source", False, 0.1, False), ("target", False, 0.2, False)]))
    assert math.isnan(only_normals.auc_source) and math.isnan(only_normals.pauc)
    assert official_score([only_normals, section_result("fan", "00", SECTION)]) == pytest.approx(
        official_score([section_result("fan", "00", SECTION)])
    )


def test_result_files_have_the_official_names_and_rows_without_a_header(tmp_path):
    rows = [
        SimpleNamespace(
            machine_type="fan", section_id="00", path=f"/data/fan/test/{name}", score=score, decision=decision
        )
        for name, score, decision in [
            ("section_00_source_test_normal_0000_a.wav", 0.25, False),
            ("section_00_target_test_anomaly_0001_b.wav", 1.5, True),
        ]
    ]
    rows.append(
        SimpleNamespace(
            machine_type="valve", section_id="01", path="/x/section_01_source_test_n.wav", score=-3.0, decision=False
        )
    )
    written = write_results(tmp_path, rows)
    assert sorted(p.name for p in written) == sorted([*result_names("fan", "00"), *result_names("valve", "01")])
    assert result_names("fan", "00") == (
        "anomaly_score_fan_section_00_test.csv",
        "decision_result_fan_section_00_test.csv",
    )
    assert read_results(tmp_path / "anomaly_score_fan_section_00_test.csv") == [
        ("section_00_source_test_normal_0000_a.wav", "0.25"),
        ("section_00_target_test_anomaly_0001_b.wav", "1.5"),
    ]
    assert (tmp_path / "decision_result_fan_section_00_test.csv").read_text() == (
        "section_00_source_test_normal_0000_a.wav,0\nsection_00_target_test_anomaly_0001_b.wav,1\n"
    )
