"""`earmark debug freeze|splits|recon`: look inside a trained detector (see `engine.debugging`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def add_parser(sub) -> None:
    debug = sub.add_parser(
        "debug",
        help="look inside a trained detector: train with a branch frozen, compare "
        "reconstruction error on normal and anomalous clips",
    )
    what = debug.add_subparsers(dest="debug_command", metavar="TOOL", required=True)
    freeze = what.add_parser(
        "freeze",
        help="train with one branch frozen and write its loss and gradient-norm "
        "curves (CSV and PNG) under the project's artifacts/logs/",
    )
    freeze.add_argument("project", type=Path)
    freeze.add_argument("--detector", default="ast_ae", help="a trained detector (default ast_ae; dcase_ae too)")
    freeze.add_argument("--branch", required=True, help="the branch to freeze, e.g. encoder or decoder")
    freeze.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    freeze.add_argument(
        "--group",
        default=None,
        help="the group to train on, e.g. fan/section_00 (default: the first with normal training clips)",
    )
    freeze.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change another detector setting (repeatable), e.g. --set batch_size=64",
    )
    splits = what.add_parser(
        "splits",
        help="write a group's ok (normal) and ng (anomalous) test clips as CSV "
        "files under the project's artifacts/logs/debug_splits/",
    )
    splits.add_argument("project", type=Path)
    splits.add_argument("--group", required=True, help="e.g. fan/section_00")
    recon = what.add_parser(
        "recon",
        help="mean and standard deviation of frame reconstruction MSE on the ok "
        "and ng split of a group, with its newest fitted model",
    )
    recon.add_argument("project", type=Path)
    recon.add_argument(
        "--detector", default="ast_ae", help="a detector that reconstructs (default ast_ae; dcase_ae too)"
    )
    recon.add_argument("--group", required=True, help="e.g. fan/section_00")
    for parser in (freeze, recon):
        parser.add_argument(
            "--device",
            default=None,
            choices=("auto", "cpu", "cuda", "mps"),
            help="where to compute (default: $EARMARK_DEVICE, else auto: CUDA when present)",
        )


def cmd_debug(args: argparse.Namespace) -> int:
    from engine.cli import _print_problems, _session
    from engine.jobs import TerminalProgress
    from engine.store import Project

    with (
        Project.open(args.project) as project,
        TerminalProgress(f"debug {args.debug_command}", unit="step") as progress,
    ):
        if args.debug_command == "splits":
            from engine.debugging import make_splits

            lines = split_lines(make_splits(project, args.group), project.folder)
        elif args.debug_command == "recon":
            lines = _recon(_session(project, args), args, progress)
        else:
            lines = _freeze(_session(project, args), args, progress)
    _print_problems(progress)
    print("\n".join(lines))
    return 0


def split_lines(splits, folder: Path) -> list[str]:
    ok, ng = len(splits.clips["ok"]), len(splits.clips["ng"])
    lines = [
        (
            f"{splits.group}: ok {ok} clip(s) (normal), ng {ng} clip(s) (anomalous); "
            f"{'wrote' if splits.made else 'read'} {splits.folder / 'ok.csv'} and {splits.folder / 'ng.csv'}"
        )
    ]
    if not ok or not ng:
        lines.append(
            f"warning: the {'ok' if not ok else 'ng'} split is empty: label the group's test clips "
            f"(`earmark set {folder} ... --label normal|anomaly`)"
        )
    return lines


def _recon(session, args: argparse.Namespace, progress) -> list[str]:
    from engine.debugging import reconstruction

    splits, figures = reconstruction(session, args.detector, args.group, progress)
    lines = split_lines(splits, session.project.folder)[:1]
    lines.append(f"frame reconstruction MSE of {args.detector} on {args.group}:")
    for figure in figures:
        said = (
            f"mean {figure.mean:.6g}, std {figure.std:.6g}"
            if not math.isnan(figure.mean)
            else "no frames (no readable clip)"
        )
        lines.append(f"  {figure.split}: {said} over {figure.frames} frame(s) of {figure.clips} clip(s)")
    ok, ng = figures
    if not math.isnan(ok.mean) and not math.isnan(ng.mean):
        ratio = ng.mean / ok.mean if ok.mean > 0 else math.inf
        lines.append(
            f"  ng / ok mean: {ratio:.3g}"
            + ("" if ratio > 1 else " (anomalies do not reconstruct worse than normal clips)")
        )
    return lines


def _freeze(session, args: argparse.Namespace, progress) -> list[str]:
    from engine.debugging import freeze
    from engine.detectors.registry import parse_settings

    run = freeze(session, args.detector, args.branch, args.epochs, args.group, parse_settings(args.settings), progress)
    last = run.rows[-1]
    norms = ", ".join(
        f"{key.removeprefix('grad_norm_')} {float(value):.4g}"
        for key, value in last.items()
        if key.startswith("grad_norm_")
    )
    losses = ", ".join(
        f"{key} {float(value):.4g}" for key, value in last.items() if key == "train_loss" or key.startswith("loss_")
    )
    return [
        (
            f"Trained {run.detector} on {run.group} for {len(run.rows)} epoch(s) with {run.branch} frozen "
            "(the project's models are unchanged)"
        ),
        f"last epoch: {losses}; gradient norm {norms or 'not recorded'}",
        f"Wrote {run.csv} and {run.png}",
    ]
