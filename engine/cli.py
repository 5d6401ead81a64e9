"""The headless `earmark` sub-commands. Imports no Qt: `app.main` hands every sub-command here.

Exit status: 0 on success, 1 with a one-line message on a user error (bad file, missing project, ...),
2 on bad usage, 130 when interrupted, 141 when the reader of its output goes away.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.errors import EarmarkError
from engine.jobs import TerminalProgress


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earmark", description="Machine-sound anomaly detection and labelling.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    imp.add_argument("sources", type=Path, nargs="+", metavar="SOURCE",
                     help="a data set folder or metadata.csv, or one or more audio files")
    imp.add_argument("--format", choices=("auto", "metadata", "dcase", "folder", "files"), default="auto",
                     help="layout of SOURCE (default: detected)")
    imp.add_argument("--strict", action="store_true", help="exit with status 1 if any file or row was skipped")

    info = sub.add_parser("info", help="clip counts by machine, section, domain, split and label")
    info.add_argument("project", type=Path)

    demo = sub.add_parser("demo", help="create the demo project from the synthetic data set and show it")
    demo.add_argument("--no-gui", action="store_true", help="print what the project holds instead of opening it")
    demo.add_argument("--project", type=Path, default=None, help="where the demo project lives "
                                                                 "(default: projects/demo)")
    _add_toy_options(demo)
    return parser


def _add_toy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=0.05, help="fraction of the DCASE 2025 counts (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except EarmarkError as exc:
        print(f"earmark: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `earmark info PROJECT | head`: the reader has gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("earmark: interrupted; the project keeps everything written before the interruption",
              file=sys.stderr)
        return 130


def cmd_toy(args: argparse.Namespace) -> int:
    from engine.data.toy import ToyConfig, generate

    config = ToyConfig(scale=args.scale, seed=args.seed, duration_s=args.duration, sections=args.sections,
                       machines=tuple(m.strip() for m in args.machines.split(",") if m.strip()))
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
    files_mode = fmt == "files" or len(args.sources) > 1 or (
        fmt is None and args.sources[0].is_file() and args.sources[0].suffix.lower() != ".csv")
    with Project.open(args.project) as project, TerminalProgress("importing") as progress:
        if files_mode:
            report = import_files(project, args.sources, progress)
        else:
            report = import_source(project, args.sources[0], fmt, progress)
    print_report(report)
    return 1 if args.strict and report.problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    from engine.store import Project

    with Project.open(args.project) as project:
        print("\n".join(describe(project)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.data.importers import import_source
    from engine.data.toy import ToyConfig, generate
    from engine.store import Project
    from engine.store.locations import default_projects_dir

    folder = args.project or default_projects_dir() / "demo"
    audio = folder / "audio"
    if not (audio / "metadata.csv").is_file():
        print(f"Synthesising the demo data set into {audio} ...")
        with TerminalProgress("synthesising") as progress:
            generate(audio, ToyConfig(scale=args.scale, seed=args.seed, duration_s=args.duration), progress)
    project = Project.open(folder) if (folder / "project.sqlite").exists() else Project.create(folder)
    with project:
        with TerminalProgress("importing") as progress:
            report = import_source(project, audio, "metadata", progress)
        if report.added or report.problems:
            print_report(report)
        print("\n".join(describe(project)))
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
    table = [header] + [tuple("-" if r[k] is None else str(r[k]) for k in
                              ("machine_type", "section_id", "domain", "split", "label", "clips")) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        *text, count = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join([*text, count.strip().rjust(widths[-1])]))
    by_split: dict[str, int] = {}
    for r in rows:
        by_split[r["split"] or "no split"] = by_split.get(r["split"] or "no split", 0) + r["clips"]
    lines.append("by split: " + ", ".join(f"{split} {n}" for split, n in by_split.items()))
    return lines


COMMANDS = {"toy": cmd_toy, "new": cmd_new, "import": cmd_import, "info": cmd_info, "demo": cmd_demo}
