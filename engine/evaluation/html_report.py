"""`earmark report` and File > Export report...: a project's evaluation as one self-contained HTML file (the
figures of `earmark evaluate`, ROC curves and score histograms as inline SVG, the thresholds, each model's
condition and the localization figures), or its tables as CSV or JSON.

The figures come from the same code as `earmark evaluate` (`engine.evaluation.report.evaluate_project`) and the
window's evaluation dock (`engine.evaluation.curves`); nothing here computes a figure of its own.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from html import escape
from pathlib import Path

import numpy as np

from engine.csv_cells import cell
from engine.errors import EarmarkError
from engine.evaluation import svg_figures
from engine.evaluation.curves import ScoreSet, histogram, roc_points, score_sets
from engine.evaluation.localization import LocalizationResult, localize_project
from engine.evaluation.report import DetectorReport, evaluate_project
from engine.files import write_text_atomic
from engine.jobs import Progress
from engine.store import results
from engine.store.thresholds import effective_threshold

FORMATS = ("html", "csv", "json")
FIGURE_COLUMNS = (
    "detector",
    "machine",
    "section",
    "auc_source",
    "auc_target",
    "pauc",
    "precision_source",
    "recall_source",
    "f1_source",
    "precision_target",
    "recall_target",
    "f1_target",
    "clips",
    "official_score",
)
THRESHOLD_COLUMNS = (
    "detector",
    "group",
    "model",
    "fitted",
    "adjusted",
    "set_by",
    "fpr",
    "set_at",
    "threshold",
    "frame_threshold",
)
MODEL_COLUMNS = (
    "detector",
    "group",
    "model",
    "created_at",
    "trained_on",
    "source",
    "target",
    "enrolled",
    "stale",
    "warning",
    "settings",
)
LOCALIZATION_COLUMNS = ("detector", "frame_auroc", "top_frame_hit_rate", "clips")


@dataclass
class ReportContent:
    """Everything a report shows, gathered once."""

    folder: Path
    split: str
    reports: list[DetectorReport]
    sets: list[ScoreSet]
    localization: list[LocalizationResult]
    #: The newest model of each fitted detector and group.
    models: list[results.ModelRecord]
    problems: list[str] = field(default_factory=list)
    made_at: str = field(default_factory=lambda: datetime.now().strftime("%Y-%m-%d %H:%M"))


def gather(project, detectors: Sequence[str] | None = None, split: str = "test", progress: Progress | None = None):
    """The content of a report on `project` (only `detectors`, if given)."""
    progress = progress or Progress()
    fitted = results.fitted_detectors(project)
    names = list(detectors) if detectors else fitted
    unknown = [d for d in names if d not in fitted]
    if unknown or not names:
        known = ", ".join(fitted) or "none yet"
        raise EarmarkError(
            f"no {' or '.join(unknown) or 'fitted'} model in {project.folder} to report on (fitted detectors: "
            f"{known}); fit and score one first, e.g. `earmark fit {project.folder} --detector knn`"
        )
    progress.update(0, 3, "evaluating")
    reports = [r for r in evaluate_project(project, names, split) if r.clips]
    progress.check()
    progress.update(1, 3, "curves and histograms")
    sets = score_sets(project, names, split)
    progress.check()
    progress.update(2, 3, "localization")
    problems: list[str] = []
    localization = localize_project(project, names, split, problems=problems)
    models = [m for name in names for m in results.latest_models(project, name).values()]
    progress.update(3, 3, "gathered")
    return ReportContent(Path(project.folder), split, reports, sets, localization, models, problems)


def write_report(
    project,
    out: str | Path,
    fmt: str = "html",
    detectors: Sequence[str] | None = None,
    split: str = "test",
    progress: Progress | None = None,
) -> list[Path]:
    """Write the report on `project` to `out` and return the files written: one HTML file, one JSON file,
    or CSV files (the figures in `out`, the other tables beside it: OUT_thresholds.csv, OUT_models.csv,
    OUT_localization.csv)."""
    if fmt not in FORMATS:
        raise EarmarkError(f"a report is written as {', '.join(FORMATS)}, not {fmt!r}")
    content = gather(project, detectors, split, progress)
    out = Path(out)
    if fmt == "html":
        write_text_atomic(out, html_text(content))
        return [out]
    tables = {
        "evaluation": (evaluation_records(content.reports), FIGURE_COLUMNS),
        "thresholds": (threshold_records(content.models), THRESHOLD_COLUMNS),
        "models": (model_records(content.models), MODEL_COLUMNS),
        "localization": ([r.as_dict() for r in content.localization], LOCALIZATION_COLUMNS),
    }
    if fmt == "json":
        whole = {name: records for name, (records, _) in tables.items()}
        whole["evaluation"] = evaluation_json(content.reports)
        write_text_atomic(out, json.dumps({"project": str(content.folder), **whole}, indent=2) + "\n")
        return [out]
    written = []
    for name, (records, columns) in tables.items():
        path = out if name == "evaluation" else out.with_name(f"{out.stem}_{name}{out.suffix or '.csv'}")
        write_text_atomic(path, csv_text(records, columns))
        written.append(path)
    return written


# -- the tables --------------------------------------------------------------------------------------------------
def _finite(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _section(s) -> dict:
    return {
        "machine": s.machine_type,
        "section": s.section_id,
        **{k: _finite(v) for k, v in s.as_dict().items() if k not in ("machine_type", "section_id")},
    }


def evaluation_json(reports: Sequence[DetectorReport]) -> list[dict]:
    """`earmark evaluate --format json`: one object per detector with its sections inside."""
    return [
        {
            "detector": r.detector,
            "official_score": _finite(r.official),
            "clips": r.clips,
            "sections": [_section(s) for s in r.sections],
        }
        for r in reports
    ]


def evaluation_records(reports: Sequence[DetectorReport]) -> list[dict]:
    """`earmark evaluate --format csv`: one record per detector, machine and section."""
    return [
        {"detector": r.detector, **_section(s), "official_score": _finite(r.official)}
        for r in reports
        for s in r.sections
    ]


def threshold_records(models: Sequence[results.ModelRecord]) -> list[dict]:
    return [
        {
            "detector": m.detector,
            "group": m.group_key,
            "model": m.model_id,
            "fitted": _finite(m.threshold),
            "adjusted": _finite(m.adjusted_threshold),
            "set_by": m.threshold_set_by,
            "fpr": m.threshold_fpr,
            "set_at": m.threshold_set_at,
            "threshold": _finite(effective_threshold(m)),
            "frame_threshold": _finite(m.frame_threshold),
        }
        for m in models
    ]


def model_records(models: Sequence[results.ModelRecord]) -> list[dict]:
    return [
        {
            "detector": m.detector,
            "group": m.group_key,
            "model": m.model_id,
            "created_at": m.created_at,
            "trained_on": m.metrics.get("trained_on"),
            "source": m.metrics.get("source"),
            "target": m.metrics.get("target"),
            "enrolled": m.metrics.get("enrolled", 0),
            "stale": m.stale,
            "warning": m.warning,
            "settings": json.dumps(m.config, sort_keys=True),
        }
        for m in models
    ]


def csv_text(records: Sequence[dict], columns: Sequence[str]) -> str:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else cell(record.get(c)) for c in columns])
    return text.getvalue()


# -- the HTML page -----------------------------------------------------------------------------------------------
STYLE = """
body { font-family: sans-serif; margin: 24px 32px; color: #222; max-width: 1300px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 16px 0 6px; } p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #d6d6d6; padding: 3px 8px; } th { background: #f1f3f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.best { font-weight: bold; background: #e8f5e9; }
td.settings { font-family: monospace; font-size: 11px; max-width: 460px; overflow-wrap: anywhere; }
div.figures { display: flex; flex-wrap: wrap; gap: 10px; } div.figures svg { border: 1px solid #e2e2e2; }
.warn { color: #a04000; } .note { color: #555; font-size: 13px; }
"""


def _number(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """An HTML table; each cell a (text, class) pair, the text already escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{t}</td>' for t, c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _evaluation_table(reports: Sequence[DetectorReport]) -> str:
    figures = ("auc_source", "auc_target", "pauc", "f1_source", "f1_target")
    best: dict[tuple[str, str, str], float] = {}  # the best detector's figure per machine, section and column
    for r in reports:
        for s in r.sections:
            for name in figures:
                value = getattr(s, name)
                if math.isfinite(value):
                    key = (s.machine_type, s.section_id, name)
                    best[key] = max(best.get(key, -math.inf), value)
    several = len(reports) > 1
    rows = []
    for r in reports:
        for s in r.sections:
            row = [(escape(r.detector), ""), (escape(s.machine_type), ""), (escape(s.section_id), "")]
            for name in ("auc_source", "auc_target", "pauc", "precision_source", "recall_source", "f1_source"):
                row.append(_figure_cell(s, name, best, several))
            for name in ("precision_target", "recall_target", "f1_target"):
                row.append(_figure_cell(s, name, best, several))
            row.append((str(s.clips), "num"))
            rows.append(row)
    header = ("detector", "machine", "section", "AUC src", "AUC tgt", "pAUC", "P src", "R src", "F1 src")
    return _table((*header, "P tgt", "R tgt", "F1 tgt", "clips"), rows)


def _figure_cell(section, name: str, best: dict, several: bool) -> tuple[str, str]:
    value = getattr(section, name)
    top = best.get((section.machine_type, section.section_id, name))
    marked = several and top is not None and math.isfinite(value) and value == top
    return _number(value), "num best" if marked else "num"


def _official(reports: Sequence[DetectorReport]) -> str:
    ranked = sorted(reports, key=lambda r: -1.0 if math.isnan(r.official) else r.official, reverse=True)
    rows = [[(escape(r.detector), ""), (_number(r.official), "num"), (str(r.clips), "num")] for r in ranked]
    return _table(("detector", "official score", "labelled clips"), rows)


def _figures(content: ReportContent) -> str:
    by_section: dict[tuple[str, str], list[ScoreSet]] = {}
    for score_set in content.sets:
        by_section.setdefault((score_set.machine_type, score_set.section_id), []).append(score_set)
    parts = []
    for (machine, section), sets in sorted(by_section.items()):
        svgs = []
        for domain in ("source", "target"):
            curves = []
            for s in sets:
                fpr, tpr, _ = roc_points(s, domain)
                curves.append(svg_figures.Curve(s.detector, fpr, tpr))
            svgs.append(svg_figures.roc_svg(curves, f"ROC, {domain} domain"))
        for s in sets:
            shown, threshold, log_scale = _histogram_scale(s)
            title = f"{s.detector}: scores"
            svgs.append(svg_figures.histogram_svg(histogram(shown), threshold, title, log_scale=log_scale))
        parts.append(f"<h3>{escape(machine)} section {escape(section)}</h3><div class='figures'>{''.join(svgs)}</div>")
    return "".join(parts)


def _histogram_scale(score_set: ScoreSet) -> tuple[ScoreSet, float | None, bool]:
    """The set to draw and its threshold: on a log scale when every score is positive and they span more than
    two decades (distances to a memory bank: a few anomalies far out would squeeze every other clip into one
    bar), else as they are."""
    scores = score_set.scores[np.isfinite(score_set.scores)]
    if scores.size < 2 or scores.min() <= 0 or scores.max() / scores.min() < 100:
        return score_set, score_set.threshold, False
    threshold = score_set.threshold
    logged = None if threshold is None else (math.log10(threshold) if threshold > 0 else -math.inf)
    return replace(score_set, scores=np.log10(score_set.scores)), logged, True


def _thresholds(models: Sequence[results.ModelRecord]) -> str:
    rows = []
    for m in models:
        how = {"value": "set by value", "fpr": f"set for FPR {m.threshold_fpr:g}" if m.threshold_fpr else "set by FPR"}
        rows.append(
            [
                (escape(m.detector), ""),
                (escape(m.group_key), ""),
                (str(m.model_id), "num"),
                (_number(m.threshold, 4), "num"),
                (_number(m.adjusted_threshold, 4), "num"),
                (escape(how.get(m.threshold_set_by or "", "fitted")), ""),
                (escape((m.threshold_set_at or "")[:16].replace("T", " ")), ""),
                (_number(m.frame_threshold, 4), "num"),
            ]
        )
    header = ("detector", "group", "model", "fitted", "adjusted", "deciding", "adjusted at", "frame threshold")
    return _table(header, rows)


def _models(models: Sequence[results.ModelRecord]) -> str:
    rows = []
    for m, record in zip(models, model_records(models), strict=True):
        trained = record["trained_on"]
        split = f" ({record['source']} source, {record['target']} target)" if record["source"] is not None else ""
        condition = "stale: its clips changed, fit it again" if m.stale else (m.warning or "")
        rows.append(
            [
                (escape(m.detector), ""),
                (escape(m.group_key), ""),
                (str(m.model_id), "num"),
                (escape(m.created_at[:16].replace("T", " ")), ""),
                (escape(f"{trained} normal clips{split}" if trained is not None else "from labels"), ""),
                (str(record["enrolled"]), "num"),
                (escape(condition), "warn" if condition else ""),
                (escape(", ".join(f"{k}={v}" for k, v in sorted(m.config.items()))), "settings"),
            ]
        )
    header = ("detector", "group", "model", "trained at", "trained on", "enrolled", "condition", "settings")
    return _table(header, rows)


def _localization(found: Sequence[LocalizationResult]) -> str:
    if not found:
        return "<p class='note'>No anomalous clips with known regions were scored with frame scores.</p>"
    ranked = sorted(found, key=lambda r: -1.0 if math.isnan(r.frame_auroc) else r.frame_auroc, reverse=True)
    rows = [
        [
            (escape(r.detector), ""),
            (_number(r.frame_auroc), "num"),
            ("-" if math.isnan(r.top_frame_hit_rate) else f"{r.top_frame_hit_rate:.0%}", "num"),
            (str(r.clips), "num"),
        ]
        for r in ranked
    ]
    return _table(("detector", "frame AUROC", "top frame in region", "clips"), rows)


def html_text(content: ReportContent) -> str:
    """The whole page: no script, no external file; figures inline as SVG."""
    title = f"Earmark report: {content.folder.name}"
    clips = max((r.clips for r in content.reports), default=0)
    if content.reports:
        evaluation = (
            _evaluation_table(content.reports)
            + "<p class='note'>AUC per domain counts that domain's normal clips and every anomalous clip of the "
            "section; pAUC over both domains up to a false-positive rate of 0.1; precision, recall and F1 from "
            "the decisions at each model's threshold. The best figure of each row among the detectors is "
            "marked.</p><h3>Official score (harmonic mean of every AUC and pAUC)</h3>" + _official(content.reports)
        )
        figures = _figures(content)
    else:
        evaluation = f"<p class='note'>No labelled {escape(content.split)} clips have been scored yet.</p>"
        figures = ""
    problems = "".join(f"<li>{escape(p)}</li>" for p in content.problems)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p class='meta'>{escape(str(content.folder))} &middot; {escape(content.split)} split, {clips} labelled "
        f"clips &middot; {len({m.detector for m in content.models})} detector(s) &middot; written "
        f"{escape(content.made_at)}</p>"
        f"<h2>Evaluation</h2>{evaluation}"
        + (f"<h2>ROC curves and score histograms</h2>{figures}" if figures else "")
        + f"<h2>Thresholds</h2>{_thresholds(content.models)}"
        f"<h2>Models</h2>{_models(content.models)}"
        f"<h2>Localization</h2>{_localization(content.localization)}"
        + (f"<h2>Problems</h2><ul>{problems}</ul>" if problems else "")
        + "</body></html>\n"
    )
