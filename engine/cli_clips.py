"""`earmark set`: say what recordings are (machine, section, domain, split, label) without writing a CSV; and
the same fields as `earmark import`'s defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.data.clip import DOMAINS, LABELS, SPLITS
from engine.errors import EarmarkError


def add_field_options(parser: argparse.ArgumentParser, defaults: bool = False) -> None:
    """--machine, --section, --domain, --split and --label; `defaults`: worded for `earmark import`."""
    what = "for files whose folders or metadata do not say (default: left empty)" if defaults else "to set"
    # "none" clears a field with `earmark set`; as an import default it would mean nothing.
    none = () if defaults else ("none",)
    parser.add_argument("--machine", default=None, help=f"machine type {what}, e.g. pump")
    parser.add_argument("--section", default=None, help=f"section {what}, e.g. 00")
    # Checked by clip_fields (exit 1 with the allowed values), not by argparse's choices (exit 2).
    for name, allowed in (("domain", DOMAINS), ("split", SPLITS), ("label", LABELS)):
        parser.add_argument(
            f"--{name}", default=None, metavar="{" + ",".join((*allowed, *none)) + "}", help=f"{name} {what}"
        )


def field_values(args: argparse.Namespace) -> dict[str, str]:
    """The field options given on the command line, as {field: value}."""
    return {
        name: getattr(args, name)
        for name in ("machine", "section", "domain", "split", "label")
        if getattr(args, name) is not None
    }


def add_parser(sub) -> None:
    parser = sub.add_parser("set", help="set the machine, section, domain, split or label of clips")
    parser.add_argument("project", type=Path)
    parser.add_argument(
        "clips",
        nargs="*",
        metavar="CLIP_ID_OR_GLOB",
        help="clip ids or globs over clip ids and file names (any of them)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only clips with this value (repeatable; fields machine, section, domain, split, "
        "label, source; VALUE none matches an empty field)",
    )
    add_field_options(parser)


def cmd_set(args: argparse.Namespace) -> int:
    from engine.store import Project
    from engine.store.clip_fields import normalise_value, parse_where, select_clips, set_fields

    values = field_values(args)
    if not values:
        raise EarmarkError("say what to set: --machine, --section, --domain, --split and/or --label")
    shown = {name: normalise_value(name, value) for name, value in values.items()}  # a bad value stops here
    where = parse_where(args.where)
    with Project.open(args.project) as project:
        clip_ids = select_clips(project, args.clips, where)
        change = set_fields(project, clip_ids, values)
    settings = ", ".join(f"{name}={value or 'none'}" for name, value in shown.items())
    print(
        f"Set {settings} on {change.changed} clip(s) ({change.matched} matched, "
        f"{change.matched - change.changed} already so)."
    )
    if change.stale:
        print(
            f"{len(change.stale)} model(s) now stale, fitted before their clips changed; refit them with "
            "`earmark fit " + f"{args.project} --detector NAME` (or Train > Fit all detectors in the window):"
        )
        for model_id, detector, group in change.stale:
            print(f"  {detector} {group} (model {model_id})")
    return 0


def stale_lines(project) -> list[str]:
    """The models fitted before their clips changed, for `earmark info`; empty when there are none."""
    from engine.store.clip_fields import stale_models

    stale = stale_models(project)
    if not stale:
        return []
    return [
        f"stale models (their clips changed since; refit with `earmark fit {project.folder} --detector NAME`): "
        + ", ".join(f"{detector} {group}" for _, detector, group in stale)
    ]
