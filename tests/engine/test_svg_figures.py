"""The report's figures as SVG: well-formed, one line per ROC curve, one bar per kind and bin with clips,
and the threshold drawn where it lies (at the edge, with an arrow, when it lies beyond the scores)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np

from engine.evaluation.curves import KINDS, ScoreSet, histogram
from engine.evaluation.svg_figures import Curve, histogram_svg, roc_svg

SVG = "{http://www.w3.org/2000/svg}"


def score_set(threshold: float | None) -> ScoreSet:
    scores = np.array([0.1, 0.2, 0.25, 0.3, 0.8, 0.9, 0.95, 0.5])
    return ScoreSet(
        "knn",
        "fan",
        "00",
        1,
        [f"c{i}" for i in range(8)],
        ["source", "source", "target", "target", "source", "target", "source", "source"],
        np.array([False, False, False, False, True, True, True, False]),
        scores,
        np.full(8, np.nan),
        threshold,
    )


def test_roc_curves_are_drawn_one_line_each_and_an_undefined_one_is_named():
    curves = [
        Curve("knn", np.array([0, 0.5, 1.0]), np.array([0, 0.9, 1.0])),
        Curve("dcase_ae & co", np.zeros(0), np.zeros(0)),
    ]
    root = ElementTree.fromstring(roc_svg(curves, "ROC, source domain"))
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2  # the diagonal and knn's curve
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "knn" in texts and "dcase_ae & co (undefined)" in texts and "ROC, source domain" in texts


def test_a_histogram_has_a_bar_per_kind_and_bin_with_clips_and_the_threshold_line():
    found = histogram(score_set(0.6), bins=4)
    root = ElementTree.fromstring(histogram_svg(found, 0.6, "knn: scores"))
    bars = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == sum(int(np.count_nonzero(found.counts_by_kind[k])) for k in KINDS)
    assert sum(int(b.find(f"{SVG}title").text.split(": ")[1].split()[0]) for b in bars) == 8
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "threshold 0.6" in texts


def test_a_threshold_beyond_the_scores_is_marked_at_the_edge():
    svg = histogram_svg(histogram(score_set(5.0), bins=4), 5.0, "knn: scores")
    ElementTree.fromstring(svg)
    assert "threshold 5 &#8594;" in svg
    assert (
        "threshold" not in histogram_svg(histogram(score_set(None), bins=4), None, "knn: scores").split("</text>", 1)[1]
    )
