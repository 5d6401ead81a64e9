"""`earmark labels export PROJECT OUT | import PROJECT PATH...`: labelled regions to and from the label
files of Audacity, Raven, Praat, and CSV / JSON tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Spelled out rather than imported, so that building the parser does not load the project store; a test
# checks they match engine.labels.exchange.FORMATS and engine.store.labels.KINDS.
FORMATS = ("audacity", "raven", "textgrid", "csv", "json")
KINDS = ("truth", "manual", "proposal")


def add_parser(sub) -> None:
    labels = sub.add_parser(
        "labels",
        help="export regions to, or import them from, Audacity, Raven, Praat TextGrid, CSV or JSON label files",
    )
    action = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    export = action.add_parser("export", help="write a project's regions to label files")
    export.add_argument("project", type=Path)
    export.add_argument(
        "out",
        help="a .csv or .json file; for Audacity, Raven and TextGrid (one clip per file) a "
        "folder, or a file when one clip is exported; - for standard output (any "
        "number of clips in CSV or JSON, one clip in the other formats)",
    )
    export.add_argument("--format", choices=FORMATS, default=None, help="default: from OUT's name (csv for -)")
    export.add_argument(
        "--clip",
        dest="clips",
        nargs="+",
        action="extend",
        default=None,
        metavar="CLIP_ID",
        help="only these clips (default: every clip with regions)",
    )
    export.add_argument(
        "--kind",
        dest="kinds",
        nargs="+",
        action="extend",
        default=None,
        choices=KINDS,
        help="which regions (default: manual)",
    )
    export.add_argument(
        "--label",
        dest="labels",
        nargs="+",
        action="extend",
        default=None,
        metavar="LABEL",
        help="only regions with these labels",
    )
    imp = action.add_parser("import", help="add the regions of label files to a project as manual regions")
    imp.add_argument("project", type=Path)
    imp.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="label files, or folders of them")
    imp.add_argument("--format", choices=FORMATS, default=None, help="default: from each file's name")
    imp.add_argument(
        "--clip",
        default=None,
        metavar="CLIP_ID",
        help="the clip the files belong to (default: the clip whose audio file has the file's name)",
    )


def cmd_labels(args: argparse.Namespace) -> int:
    from engine.cli import print_report
    from engine.labels.exchange import export_labels, export_text, import_labels
    from engine.store import Project

    if args.labels_command == "export":
        kinds = tuple(args.kinds or ("manual",))
        if args.out == "-":
            with Project.open(args.project) as project:
                text = export_text(project, args.format or "csv", kinds=kinds, clip_ids=args.clips, labels=args.labels)
            sys.stdout.write(text)
            return 0
        with Project.open(args.project) as project:
            written = export_labels(
                project, Path(args.out), args.format, kinds=kinds, clip_ids=args.clips, labels=args.labels
            )
        for path in written:
            print(f"wrote {path}")
        return 0
    with Project.open(args.project) as project:
        report = import_labels(project, args.paths, args.format, args.clip)
    print_report(report)
    nothing_read = not report.added and not report.duplicates
    return 1 if report.problems and nothing_read else 0
