"""Results: `earmark evaluate` (the figures as text, CSV or JSON), `earmark export dcase` (the DCASE
challenge's result files), `earmark scores PROJECT` (each clip's score and decision as CSV or JSON on
standard output, for other programs), `earmark propose PROJECT --detector D` (proposed regions from stored
frame scores, as the window's P key makes them), `earmark threshold` (a group's decision threshold, set by
value or by a false-positive rate on training normals, or reset) and `earmark report` (the evaluation, its
figures, the thresholds and the models as one HTML file, or the tables as CSV or JSON).

Standard output carries only the table, so `earmark scores p --format json | jq ...` and `earmark evaluate
p --format csv > figures.csv` work; messages go to standard error.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.cli_clips import stale_lines
from engine.csv_cells import cell
from engine.errors import EarmarkError

SCORE_COLUMNS = (
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
)


def add_parser(sub) -> None:
    scores = sub.add_parser("scores", help="each scored clip's score and decision, as CSV or JSON on standard output")
    scores.add_argument("project", type=Path)
    scores.add_argument(
        "--detector",
        action="append",
        default=None,
        help="only this detector (repeatable; default: every scored detector)",
    )
    scores.add_argument(
        "--split", default="all", choices=("train", "test", "supplemental", "all"), help="which clips (default all)"
    )
    scores.add_argument("--format", choices=("csv", "json"), default="csv", help="default csv")

    propose = sub.add_parser(
        "propose", help="propose regions where a detector's frame scores are high, as the window's P key does"
    )
    propose.add_argument("project", type=Path)
    propose.add_argument("--detector", required=True, help="a detector that scored the clips")
    propose.add_argument(
        "--clip",
        dest="clips",
        nargs="+",
        action="extend",
        default=None,
        metavar="CLIP_ID",
        help="only these clips (default: every clip the detector scored)",
    )
    propose.add_argument(
        "--on",
        type=float,
        default=1.0,
        metavar="RATIO",
        help="a region starts where the frame score reaches RATIO x the model's frame threshold (default 1.0)",
    )
    propose.add_argument(
        "--off",
        type=float,
        default=None,
        metavar="RATIO",
        help="and ends where it falls below RATIO x the threshold (default 0.9 x the --on ratio)",
    )
    propose.add_argument(
        "--min-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="drop regions shorter than this (default 0.1)",
    )
    propose.add_argument(
        "--merge-gap", type=float, default=None, metavar="SECONDS", help="join regions closer than this (default 1.0)"
    )
    propose.add_argument("--label", default=None, help="the proposals' label (default: as in the window)")
    propose.add_argument("--dry-run", action="store_true", help="print the proposals, store nothing")

    threshold = sub.add_parser("threshold", help="set a group's decision threshold (by value or false-positive rate)")
    threshold.add_argument("project", type=Path)
    threshold.add_argument("--detector", required=True, help="a fitted detector")
    threshold.add_argument("--group", required=True, help="its model group, e.g. fan/section_00")
    how = threshold.add_mutually_exclusive_group(required=True)
    how.add_argument("--value", type=float, default=None, help="the new threshold: scores above it are anomalous")
    how.add_argument(
        "--fpr",
        type=float,
        default=None,
        metavar="RATE",
        help="the threshold that flags at most this share of the model's held-out training normals (0.05: 5 %%)",
    )
    how.add_argument("--reset", action="store_true", help="back to the threshold the model was fitted with")

    report = sub.add_parser("report", help="the evaluation, figures, thresholds and models as one HTML file")
    report.add_argument("project", type=Path)
    report.add_argument("out", type=Path, help="the file to write (OUT.html; with csv, OUT.csv and files beside it)")
    report.add_argument(
        "--format",
        choices=("html", "csv", "json"),
        default=None,
        help="html (default; csv or json when OUT ends so): one page with figures; csv: the tables; json: all tables",
    )
    report.add_argument("--detector", action="append", default=None, help="only this detector (repeatable)")


def add_evaluate_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "csv", "json"),
        default="text",
        help="text (default: tables for reading), csv (one row per detector, machine and section) or json",
    )


def cmd_scores(args: argparse.Namespace) -> int:
    from engine.store import Project, results

    split = None if args.split == "all" else args.split
    from engine.store.thresholds import effective_threshold

    with Project.open(args.project) as project:
        thresholds = {m.model_id: effective_threshold(m) for m in results.models(project)}
        rows = [
            r
            for r in results.latest_scores(project, split=split)
            if args.detector is None or r.detector in args.detector
        ]
    if not rows:
        which = f"{' or '.join(args.detector)} " if args.detector else ""
        where = "" if split is None else f" of the {split} split"
        raise EarmarkError(
            f"no {which}scores for clips{where} in {args.project}; run `earmark score "
            f"{args.project} --detector NAME` first"
        )
    records = [
        {
            "clip_id": r.clip_id,
            "file": r.path,
            "machine": r.machine_type,
            "section": r.section_id,
            "domain": r.domain,
            "split": r.split,
            "label": r.label,
            "detector": r.detector,
            "model": r.model_id,
            "score": float(r.score),
            "decision": "anomaly" if r.decision else "normal",
            "threshold": _finite(thresholds.get(r.model_id)),
            "normalised": _finite(r.normalised),
        }
        for r in rows
    ]
    _write(records, SCORE_COLUMNS, args.format)
    return 0


def print_figures(reports, fmt: str) -> None:
    """`earmark evaluate --format csv|json`: the figures of `engine.evaluation.report.evaluate_project`, one
    record per detector, machine and section (JSON: one object per detector with its sections inside).
    Undefined figures (an AUC without both classes) are empty in CSV and null in JSON. The same records as
    `earmark report --format csv|json` (`engine.evaluation.html_report`)."""
    from engine.evaluation.html_report import FIGURE_COLUMNS, evaluation_json, evaluation_records

    if fmt == "json":
        json.dump(evaluation_json(reports), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _write(evaluation_records(reports), FIGURE_COLUMNS, fmt)


def cmd_threshold(args: argparse.Namespace) -> int:
    from engine.store import Project
    from engine.store import thresholds as store

    with Project.open(args.project) as project:
        record = store.find_model(project, args.detector, args.group)
        if args.reset:
            change = store.reset_threshold(project, record.model_id)
            how = " (the fitted threshold)"
        elif args.fpr is not None:
            value = store.threshold_for_fpr(project, record.model_id, args.fpr)
            change = store.set_threshold(project, record.model_id, value, set_by="fpr", fpr=args.fpr)
            how = f" (at most {args.fpr:g} of its held-out training normals above it)"
        else:
            change = store.set_threshold(project, record.model_id, args.value)
            how = ""
        # Scores stored by an older model of the group (fitted again, not scored since) keep its decisions.
        older = project.db.execute(
            "SELECT COUNT(DISTINCT clip_id) FROM scores JOIN models USING (model_id) WHERE detector = ? "
            "AND group_key = ? AND model_id != ? AND clip_id NOT IN (SELECT clip_id FROM scores WHERE model_id = ?)",
            [record.detector, record.group_key, record.model_id, record.model_id],
        ).fetchone()[0]
    print(
        f"{args.detector} {args.group} (model {change.model_id}): threshold {change.old:.6g} -> {change.new:.6g}{how}"
    )
    shown = ", ".join(change.changed_clips[:10]) + (" ..." if len(change.changed_clips) > 10 else "")
    print(f"{len(change.changed_clips)} decision(s) changed" + (f": {shown}" if shown else ""))
    if older:
        print(
            f"warning: {older} clip(s) of {args.group} were last scored by an older {args.detector} model and keep "
            f"its decisions; score them again (`earmark score {args.project} --detector {args.detector}`) for "
            "this threshold to decide them",
            file=sys.stderr,
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine.evaluation.html_report import write_report
    from engine.jobs import TerminalProgress
    from engine.store import Project

    fmt = args.format or {".csv": "csv", ".json": "json"}.get(args.out.suffix.lower(), "html")
    with Project.open(args.project) as project, TerminalProgress("writing the report") as progress:
        written = write_report(project, args.out, fmt, args.detector, progress=progress)
    for line in progress.problems:
        print(f"warning: {line}", file=sys.stderr)
    print(f"Wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    from engine.detectors.registry import finding_label
    from engine.jobs import TerminalProgress
    from engine.labels import proposals
    from engine.store import Project

    per_clip: list[tuple[str, list]] = []
    options = {
        "on_ratio": args.on,
        "off_ratio": _default(args.off, proposals.DEFAULT_OFF_RATIO * args.on),
        "min_duration_s": _default(args.min_duration, proposals.DEFAULT_MIN_DURATION_S),
        "merge_gap_s": _default(args.merge_gap, proposals.DEFAULT_MERGE_GAP_S),
    }
    with Project.open(args.project) as project, TerminalProgress(f"proposing with {args.detector}") as progress:
        total = proposals.propose_all(
            project,
            args.detector,
            progress,
            clip_ids=args.clips,
            label=args.label or finding_label(args.detector),
            store=not args.dry_run,
            on_clip=lambda c, r: per_clip.append((c, r)),
            **options,
        )
    for line in progress.problems:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    for clip_id, regions in per_clip:
        spans = ", ".join(f"{r.start_s:.2f}-{r.end_s:.2f} s" for r in regions)
        print(f"{clip_id}: {len(regions)} proposal(s){': ' + spans if spans else ''}")
    verb = "Found" if args.dry_run else "Stored"
    print(
        f"{verb} {total} proposal(s) on {len(per_clip)} clip(s) from {args.detector}"
        f"{' (dry run: nothing stored)' if args.dry_run else ''}"
    )
    return 0


def _default(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _finite(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _write(records: list[dict], columns: tuple[str, ...], fmt: str) -> None:
    if fmt == "json":
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([cell(record[c]) for c in columns])  # text a spreadsheet takes for a formula: escaped


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.evaluation.report import evaluate_project
    from engine.store import Project

    with Project.open(args.project) as project:
        if args.format == "text":
            found = evaluation_lines(project, args.detector)
        else:
            reports = evaluate_project(project, args.detector)
            found = reports if any(r.clips for r in reports) else []
        for line in stale_lines(project):
            print(f"warning: {line}", file=sys.stderr)
    if not found:
        raise EarmarkError(
            f"no scores for labelled test clips in {args.project}; run "
            f"`earmark score {args.project} --detector NAME` first"
        )
    if args.format == "text":
        print("\n".join(found))
    else:
        print_figures(found, args.format)
    return 0


def evaluation_lines(project, detectors: Sequence[str] | None = None) -> list[str]:
    """The official figures table, then localization where truth regions are known; empty when nothing
    labelled has been scored."""
    from engine.evaluation.localization import format_localization, localize_project
    from engine.evaluation.report import evaluate_project, format_reports

    reports = evaluate_project(project, detectors)
    if not reports or not any(r.clips for r in reports):
        return []
    problems: list[str] = []
    localization = format_localization(localize_project(project, detectors, problems=problems))
    for line in problems:  # named, and the figures of every other clip stand
        print(f"warning: {line}", file=sys.stderr)
    return format_reports(reports) + ([""] + localization if localization else [])


def cmd_export(args: argparse.Namespace) -> int:
    from engine.evaluation.dcase_io import export_dcase
    from engine.store import Project

    with Project.open(args.project) as project:
        written = export_dcase(project, args.out, args.detector)
    for detector, files in written.items():
        print(f"{detector}: wrote {len(files)} file(s) to {files[0].parent}")
    return 0
