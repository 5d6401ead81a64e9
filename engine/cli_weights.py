"""`earmark weights list | add NAME PATH | remove NAME | check [NAME]`: the pretrained models Earmark uses."""

from __future__ import annotations

import argparse

from engine.errors import EarmarkError


def add_parser(sub) -> None:
    weights = sub.add_parser("weights", help="set up and check pretrained weights (AST, BEATs)")
    action = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    action.add_parser("list", help="the weights Earmark can use, where they are and where to get them")
    add = action.add_parser("add", help="check a weights folder or file, then remember it")
    add.add_argument("name", choices=("ast", "beats"))
    add.add_argument(
        "path",
        help="AST: a transformers folder (or a model id in the Hugging Face cache); BEATs: the official .pt file",
    )
    add.add_argument(
        "--allow-download",
        action="store_true",
        help="let AST model ids be fetched from the Hugging Face Hub when not cached (off by default)",
    )
    remove = action.add_parser("remove", help="forget the weights of NAME")
    remove.add_argument("name", choices=("ast", "beats"))
    check = action.add_parser("check", help="load the configured weights and say whether they work")
    check.add_argument("name", nargs="?", choices=("ast", "beats"), default=None)


def cmd_weights(args: argparse.Namespace) -> int:
    from engine import weights

    if args.weights_command == "list":
        configured = weights.configured()
        print(f"Weights settings: {weights.config_dir() / weights.CONFIG_FILE}")
        for name, kind in weights.KINDS.items():
            print(f"{name}: {configured.get(name, 'not set up')}")
            print(f"    {kind.what}")
            if name not in configured:
                print(f"    to set up: {kind.where}")
        print(f"downloads: {'allowed' if weights.allow_download() else 'off (Earmark works offline)'}")
        return 0
    if args.weights_command == "add":
        if args.allow_download:
            weights.set_allow_download(True)
        stored = weights.add(args.name, args.path)
        print(f"{args.name}: {weights.check(args.name, stored)}; set up from {stored}")
        return 0
    if args.weights_command == "remove":
        weights.remove(args.name)
        print(f"{args.name}: forgotten")
        return 0
    names = [args.name] if args.name else list(weights.configured())
    if not names:
        raise EarmarkError("no weights are set up; `earmark weights list` says how to get them")
    failed = 0
    for name in names:
        try:
            print(f"{name}: ok, {weights.check(name)}")
        except EarmarkError as exc:
            print(f"{name}: failed, {exc}")
            failed += 1
    return 1 if failed else 0
