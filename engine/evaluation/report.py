"""Evaluating stored scores: per detector, the official figures of every section and the official score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.evaluation.metrics import (
    ScoredClip,
    SectionResult,
    official_score,
    section_result,
)


@dataclass
class DetectorReport:
    detector: str
    sections: list[SectionResult]
    official: float
    clips: int

    def as_dict(self) -> dict:
        return {
            "detector": self.detector,
            "official_score": _json_number(self.official),
            "clips": self.clips,
            "sections": [{k: _json_number(v) for k, v in s.as_dict().items()} for s in self.sections],
        }


def _json_number(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate_rows(detector: str, rows: Sequence[tuple[object, float, bool]]) -> DetectorReport:
    """`rows` of (clip, score, decision); only clips with a label and a domain count."""
    by_section: dict[tuple[str, str], list[ScoredClip]] = {}
    for clip, score, decision in rows:
        if clip.label not in ("normal", "anomaly") or clip.domain not in ("source", "target"):
            continue
        key = (clip.machine_type or "unknown", clip.section_id or "00")
        by_section.setdefault(key, []).append(
            ScoredClip(clip.clip_id, clip.domain, clip.label == "anomaly", float(score), bool(decision))
        )
    sections = [section_result(machine, section, clips) for (machine, section), clips in sorted(by_section.items())]
    return DetectorReport(detector, sections, official_score(sections), sum(len(c) for c in by_section.values()))


def evaluate_project(project, detectors: Sequence[str] | None = None, split: str = "test") -> list[DetectorReport]:
    """A report per detector that has scores for labelled clips of `split`."""
    from engine.store import results

    rows = results.latest_scores(project, split=split)
    names = detectors or sorted({r.detector for r in rows})
    return [evaluate_rows(name, [(r, r.score, r.decision) for r in rows if r.detector == name]) for name in names]


def format_reports(reports: Sequence[DetectorReport]) -> list[str]:
    """A table per detector x machine x section (AUC per domain, pAUC, F1 per domain), then the scores."""

    def number(value: float) -> str:
        return "  -  " if math.isnan(value) else f"{value:.3f}"

    header = ("detector", "machine", "section", "AUC src", "AUC tgt", "pAUC", "F1 src", "F1 tgt", "clips")
    table = [header]
    for report in reports:
        for s in report.sections:
            table.append(
                (
                    report.detector,
                    s.machine_type,
                    s.section_id,
                    number(s.auc_source),
                    number(s.auc_target),
                    number(s.pauc),
                    number(s.f1_source),
                    number(s.f1_target),
                    str(s.clips),
                )
            )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        )
        for row in table
    ]
    lines.append("")
    lines.append("Official score (harmonic mean of every AUC source, AUC target and pAUC):")
    for report in sorted(reports, key=lambda r: -1 if math.isnan(r.official) else r.official, reverse=True):
        lines.append(f"  {report.detector:<12} {number(report.official)}   ({report.clips} labelled clips)")
    return lines
