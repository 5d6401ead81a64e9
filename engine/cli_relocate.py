"""`earmark relocate`: point clips at recordings that were moved, checking each file's checksum."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.jobs import TerminalProgress


def add_parser(sub) -> None:
    relocate = sub.add_parser(
        "relocate", help="point clips at recordings moved to another folder (checksums are checked)"
    )
    relocate.add_argument("project", type=Path)
    relocate.add_argument("old_prefix", metavar="OLD_PREFIX", help="the folder the clips' paths start with now")
    relocate.add_argument("new_prefix", metavar="NEW_PREFIX", type=Path, help="the folder they were moved to")


def cmd_relocate(args: argparse.Namespace) -> int:
    from engine.store import Project
    from engine.store.relocate import relocate

    with Project.open(args.project) as project, TerminalProgress("relocating") as progress:
        report = relocate(project, args.old_prefix, args.new_prefix, progress)
    summary, *details = report.lines()
    for line in details:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    print(summary)
    return 0
