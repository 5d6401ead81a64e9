"""`earmark demo --no-gui`: build the demo project and print its figures; and where the demo project goes and
how it is made, for the window's `earmark demo` as well (app/startup.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli_results import evaluation_lines
from engine.jobs import TerminalProgress


def cmd_demo(args: argparse.Namespace) -> int:
    """`earmark demo --no-gui` (and `earmark demo` where no display is available): build and print."""
    from engine.cli import describe
    from engine.demo import build_demo
    from engine.device import pick_device
    from engine.store import Project

    folder = demo_folder(args)
    plan = demo_plan(args)

    with TerminalProgress("building the demo") as progress:
        problems = build_demo(folder, plan, pick_device(args.device), progress, say=progress.say)
    for line in problems:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    with Project.open(folder) as project:
        print("\n".join(describe(project)))
        print()
        print("\n".join(evaluation_lines(project)))
    print(
        f"(dcase_ae trained for {args.ae_epochs} epochs here; `earmark fit {folder} --detector dcase_ae` "
        "trains the baseline's 100)"
    )
    return 0


def demo_folder(args: argparse.Namespace) -> Path:
    from engine.store.locations import default_projects_dir

    return args.project or default_projects_dir() / "demo"


def demo_plan(args: argparse.Namespace):
    from engine.data.toy import ToyConfig
    from engine.demo import DemoPlan

    return DemoPlan(
        ToyConfig(scale=args.scale, seed=args.seed, duration_s=args.duration, anomalies=args.anomalies), args.ae_epochs
    )
