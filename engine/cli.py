"""The headless `earmark` sub-commands. Imports no Qt: `app.main` hands every sub-command here.

Exit status: 0 on success, 1 with a one-line message on a user error (bad file, missing project, ...),
2 on bad usage, 130 when interrupted, 141 when the reader of its output goes away.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.cli_clips import add_field_options, cmd_set, field_values, stale_lines
from engine.cli_clips import add_parser as add_set_parser
from engine.cli_debug import add_parser as add_debug_parser
from engine.cli_debug import cmd_debug
from engine.cli_demo import cmd_demo
from engine.cli_errors import refuse_read_only, run_reported
from engine.cli_help import add_help, version
from engine.cli_labels import add_parser as add_labels_parser
from engine.cli_labels import cmd_labels
from engine.cli_relocate import add_parser as add_relocate_parser
from engine.cli_relocate import cmd_relocate
from engine.cli_repair import add_parser as add_repair_parser
from engine.cli_repair import cmd_repair
from engine.cli_results import (
    add_evaluate_format,
    cmd_evaluate,
    cmd_export,
    cmd_propose,
    cmd_report,
    cmd_scores,
    cmd_threshold,
)
from engine.cli_results import add_parser as add_results_parser
from engine.cli_train import add_parser as add_train_parser
from engine.cli_train import cmd_toy_set, cmd_train
from engine.cli_weights import add_parser as add_weights_parser
from engine.cli_weights import cmd_weights
from engine.errors import EarmarkError
from engine.jobs import TerminalProgress
from engine.threads import configure_threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earmark", description="Machine-sound anomaly detection and labelling.")
    parser.add_argument("--version", action="version", version=f"earmark {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    window = sub.add_parser("open", help="open the window, on PROJECT if given (the same as `earmark` alone)")
    window.add_argument("project", type=Path, nargs="?", default=None, metavar="PROJECT")

    toy = sub.add_parser("toy", help="write the synthetic data set (WAV files and metadata.csv)")
    toy.add_argument("out", type=Path, help="folder to write into")
    _add_toy_options(toy)
    toy.add_argument("--sections", type=int, default=3, help="sections per machine type (default 3)")
    toy.add_argument("--machines", default="fan,bearing,valve", help="comma-separated machine types")
    toy.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")

    new = sub.add_parser("new", help="create an empty project folder")
    new.add_argument("project", type=Path)

    imp = sub.add_parser("import", help="add a data set folder, a metadata.csv or audio files to a project")
    imp.add_argument("project", type=Path)
    imp.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="SOURCE",
        help="a data set folder or metadata.csv, or one or more audio files",
    )
    imp.add_argument(
        "--format",
        choices=("auto", "metadata", "dcase", "esc50", "emodb", "folder", "files"),
        default="auto",
        help="layout of SOURCE (default: detected)",
    )
    imp.add_argument("--strict", action="store_true", help="exit with status 1 if any file or row was skipped")
    imp.add_argument(
        "--channel",
        type=_channel_number,
        default=None,
        metavar="N",
        help="read multi-channel files as channel N (1 is the first) instead of the mono mix",
    )
    add_field_options(imp, defaults=True)
    add_set_parser(sub)

    info = sub.add_parser("info", help="clip counts by machine, section, domain, split and label")
    info.add_argument("project", type=Path)

    fit = sub.add_parser("fit", help="fit a detector on every group's normal training clips")
    fit.add_argument("project", type=Path)
    fit.add_argument("--detector", required=True, help="detector key (dcase_ae, knn, ...)")
    fit.add_argument("--group", default=None, help="fit just this group, e.g. fan/section_00")
    fit.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a detector setting (repeatable), e.g. --set k=5 --set mode=mahalanobis",
    )
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue a cancelled or killed training (dcase_ae, ast_ae) from its last checkpoint",
    )
    _add_device_option(fit)

    score = sub.add_parser("score", help="score clips with a fitted detector and store the scores")
    score.add_argument("project", type=Path)
    score.add_argument("--detector", required=True)
    score.add_argument(
        "--split", default="test", choices=("train", "test", "supplemental", "all"), help="which clips (default test)"
    )
    score.add_argument("--group", default=None, help="score just this group, e.g. fan/section_00")
    _add_device_option(score)

    enrol = sub.add_parser("enrol", help="add target-domain normal clips to fitted models without refitting")
    enrol.add_argument("project", type=Path)
    enrol.add_argument("--detector", required=True)
    enrol.add_argument("clips", nargs="+", metavar="CLIP_ID")
    _add_device_option(enrol)

    evaluate = sub.add_parser("evaluate", help="AUC, pAUC and the official score of every scored detector")
    evaluate.add_argument("project", type=Path)
    evaluate.add_argument("--detector", action="append", default=None, help="only this detector (repeatable)")
    add_evaluate_format(evaluate)

    export = sub.add_parser("export", help="write results in another tool's format")
    export_sub = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    dcase = export_sub.add_parser(
        "dcase", help="anomaly_score_* and decision_result_* files for the official DCASE evaluator"
    )
    dcase.add_argument("project", type=Path)
    dcase.add_argument("out", type=Path)
    dcase.add_argument(
        "--detector",
        default=None,
        help="one detector, written straight into OUT (default: every scored detector, one sub-folder each)",
    )

    add_weights_parser(sub)
    add_labels_parser(sub)
    add_train_parser(sub)
    add_results_parser(sub)
    add_relocate_parser(sub)
    add_repair_parser(sub)
    add_debug_parser(sub)
    demo = sub.add_parser("demo", help="create the demo project from the synthetic data set and show it")
    demo.add_argument(
        "--no-gui", action="store_true", help="build the demo and print its figures instead of opening the window"
    )
    demo.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="PNG",
        help="render the window with a clip and its anomaly map to PNG (no display needed), then exit",
    )
    demo.add_argument(
        "--project", type=Path, default=None, help="where the demo project lives (default: projects/demo)"
    )
    _add_toy_options(demo)
    demo.add_argument(
        "--ae-epochs",
        type=int,
        default=20,
        help="training epochs of dcase_ae in the demo (default 20; the baseline's 100 takes minutes on a CPU)",
    )
    _add_device_option(demo)
    return add_help(parser)


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        choices=("auto", "cpu", "cuda", "mps"),
        help="where to compute (default: $EARMARK_DEVICE, else auto: CUDA when present)",
    )


def _channel_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a channel number (1 is the first channel)")
    return int(text)


def _add_toy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=0.05, help="fraction of the DCASE 2025 counts (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")
    parser.add_argument(
        "--anomalies",
        default="all",
        choices=("transient", "stationary", "all"),
        help="anomalous test clips: short transient events, whole-clip stationary faults "
        "(imbalance, misalignment, bearing wear, clogging, looseness), or all (default)",
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace | int:
    """The parsed command line, or the exit status when argparse has answered it itself (0 after --help or
    --version, 2 after a usage error, both printed)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if isinstance(args, int):
        return args
    if args.command is None:
        build_parser().print_help()
        return 2

    def command() -> int:
        refuse_read_only(args)
        if args.command in COMPUTING:
            configure_threads("small")
        return COMMANDS[args.command](args)

    return run_reported(args, command)


def cmd_open(args: argparse.Namespace) -> int:
    raise EarmarkError(
        "the window is opened by the `earmark` program itself (`earmark open [PROJECT]`), not "
        "by the headless command line"
    )


def cmd_toy(args: argparse.Namespace) -> int:
    from engine.data.toy import ToyConfig, generate

    config = ToyConfig(
        scale=args.scale,
        seed=args.seed,
        duration_s=args.duration,
        sections=args.sections,
        machines=tuple(m.strip() for m in args.machines.split(",") if m.strip()),
        anomalies=args.anomalies,
    )
    with TerminalProgress("synthesising") as progress:
        metadata = generate(args.out, config, progress, workers=args.workers)
    print(f"Wrote the synthetic data set to {args.out} ({metadata.name} lists every clip).")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from engine.store import Project

    Project.create(args.project).close()
    print(f"Created project {args.project}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from engine.data.importers import import_files, import_source
    from engine.store import Project

    fmt = None if args.format == "auto" else args.format
    files_mode = (
        fmt == "files"
        or len(args.sources) > 1
        or (fmt is None and args.sources[0].is_file() and args.sources[0].suffix.lower() != ".csv")
    )
    with Project.open(args.project) as project, TerminalProgress("importing") as progress:
        channel = None if args.channel is None else args.channel - 1
        if files_mode:
            report = import_files(project, args.sources, progress, defaults=field_values(args), channel=channel)
        else:
            report = import_source(
                project, args.sources[0], fmt, progress, defaults=field_values(args), channel=channel
            )
        stale = stale_lines(project)
    print_report(report)
    for line in stale:  # new training clips in fitted groups
        print(line)
    return 1 if args.strict and report.problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    from engine.store import Project

    with Project.open(args.project) as project:
        print("\n".join(describe(project) + stale_lines(project)))
    return 0


def _session(project, args: argparse.Namespace):
    from engine.detectors.runs import Session
    from engine.device import pick_device

    return Session(project, pick_device(getattr(args, "device", None)))


def _print_problems(progress) -> None:
    for line in progress.problems:
        print(line, file=sys.stderr)
    sys.stderr.flush()


def _threshold_text(model) -> str:
    """The threshold that decides (one the user set is carried into an enrolled model), and the fitted one."""
    if model.adjusted_threshold is None:
        return f"threshold {model.threshold:.4g}"
    how = f"at {model.threshold_fpr:g} false positives" if model.threshold_set_by == "fpr" else "by value"
    return f"threshold {model.adjusted_threshold:.4g} (set {how}; fitted {model.threshold:.4g})"


def _print_models(verb: str, models, progress) -> None:
    _print_problems(progress)
    for model in models:
        clips = model.metrics.get("trained_on", "?"), model.metrics.get("enrolled", 0)
        print(
            f"{verb} {model.detector} for {model.group_key}: model {model.model_id}, {clips[0]} training "
            f"clip(s){f' + {clips[1]} enrolled' if clips[1] else ''}, {_threshold_text(model)}"
        )
        weights = model.metrics.get("target_weights")
        if weights and (model.metrics.get("target") or clips[1]):  # an ensemble with target clips: its members'
            # weights in the target domain, learnt from their domain shifts (a group without one has none to say)
            print("  target-domain weights: " + ", ".join(f"{key} {float(w):.3g}" for key, w in weights.items()))
        if model.metrics.get("encoder") in ("scratch", "pretrained"):  # ast_ae: where its AST started
            started = (
                f"fine-tuned from {model.metrics.get('weights')}"
                if model.metrics["encoder"] == "pretrained"
                else "a small AST trained from scratch (no AST weights set up)"
            )
            print(f"  encoder: {started}")
        if model.metrics.get("fallback"):  # the metadata detectors: what they trained on
            print(f"  {model.metrics['fallback']}")
        elif model.metrics.get("metadata_tasks"):
            print(f"  metadata tasks: {model.metrics['metadata_tasks']}")
            for line in model.metrics.get("dropped_tasks") or ():
                print(f"  task dropped: {line}")
        if model.warning:
            print(f"  warning: {model.warning}")


def cmd_fit(args: argparse.Namespace) -> int:
    from engine.detectors import runs
    from engine.detectors.registry import parse_settings
    from engine.store import Project

    settings = parse_settings(args.settings)
    with Project.open(args.project) as project, TerminalProgress(f"fitting {args.detector}", unit="step") as progress:
        fitted = runs.fit(_session(project, args), args.detector, settings, args.group, progress, resume=args.resume)
    _print_models("Fitted", fitted, progress)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from engine.detectors import runs
    from engine.store import Project

    split = None if args.split == "all" else args.split
    with Project.open(args.project) as project, TerminalProgress(f"scoring {args.detector}") as progress:
        run = runs.score(_session(project, args), args.detector, split, args.group, progress)
        stale = stale_lines(project)
    _print_problems(progress)
    for line in stale:  # scores from models whose clips changed since: say so before the figures are trusted
        print(f"warning: {line}", file=sys.stderr)
    flagged = sum(d.decision for d in run.detections)
    print(
        f"Scored {run.scored} clip(s) with {args.detector} in {len(run.groups)} group(s); {flagged} flagged "
        f"anomalous. Run files: {run.folder}"
    )
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    from engine.detectors import runs
    from engine.store import Project

    with Project.open(args.project) as project, TerminalProgress(f"enrolling {args.detector}", unit="step") as progress:
        updated = runs.enrol(_session(project, args), args.detector, args.clips, progress)
    _print_models("Enrolled into", updated, progress)
    return 0


def print_report(report) -> None:
    """An import's problems on stderr, one per line, then its summary on stdout."""
    summary, *problems = report.lines()
    for line in problems:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    print(summary)


def describe(project) -> list[str]:
    """What a project holds, as lines of text: totals and a table of counts."""
    rows = project.summary()
    clips = sum(r["clips"] for r in rows)
    hours = sum(r["duration_s"] or 0 for r in rows) / 3600
    lines = [f"Project {project.folder}: {clips} clip(s), {hours:.2f} h of audio"]
    if not rows:
        return lines + ["(no clips yet: add some with `earmark import PROJECT SOURCE`)"]
    header = ("machine", "section", "domain", "split", "label", "clips")
    table = [header] + [
        tuple(
            "-" if r[k] is None else str(r[k])
            for k in ("machine_type", "section_id", "domain", "split", "label", "clips")
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        *text, count = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join([*text, count.strip().rjust(widths[-1])]))
    by_split: dict[str, int] = {}
    for r in rows:
        by_split[r["split"] or "no split"] = by_split.get(r["split"] or "no split", 0) + r["clips"]
    lines.append("by split: " + ", ".join(f"{split} {n}" for split, n in by_split.items()))
    return lines


COMMANDS = {
    "toy": cmd_toy,
    "new": cmd_new,
    "import": cmd_import,
    "info": cmd_info,
    "fit": cmd_fit,
    "score": cmd_score,
    "enrol": cmd_enrol,
    "evaluate": cmd_evaluate,
    "export": cmd_export,
    "demo": cmd_demo,
    "weights": cmd_weights,
    "labels": cmd_labels,
    "train": cmd_train,
    "toy-set": cmd_toy_set,
    "set": cmd_set,
    "relocate": cmd_relocate,
    "open": cmd_open,
    "scores": cmd_scores,
    "propose": cmd_propose,
    "threshold": cmd_threshold,
    "report": cmd_report,
    "repair": cmd_repair,
    "debug": cmd_debug,
}
#: Commands that compute with torch: their thread count is set first (engine.threads).
COMPUTING = {"fit", "score", "enrol", "demo", "train", "debug"}
