"""`earmark repair`: rebuild a damaged project file from what can still be read, keeping the damaged one."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    repair = sub.add_parser(
        "repair", help="rebuild a damaged project.sqlite from what can still be read (the damaged file is kept aside)"
    )
    repair.add_argument("project", type=Path)
    repair.add_argument("--force", action="store_true", help="rebuild the file even when it passes SQLite's checks")


def cmd_repair(args: argparse.Namespace) -> int:
    from engine.store.repair import repair

    report = repair(args.project, force=args.force)
    print("\n".join(report.lines()))
    return 0
