"""`earmark train leak PROJECT` and `earmark train classifier PROJECT`: the supervised classifiers, trained
from the project's labelled regions (leak) or its clips' classes (sound), resumable with --resume; and
`earmark toy-set leaks|sounds OUT`, the synthetic sets they are measured on."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="train a supervised classifier from the project's labels")
    what = train.add_subparsers(dest="train_what", metavar="CLASSIFIER", required=True)
    leak = what.add_parser(
        "leak",
        help="the leak detector (binary LEAK / NOLEAK, or 5 classes), from the "
        "labelled regions; then score every clip with it",
    )
    leak.add_argument("project", type=Path)
    leak.add_argument(
        "--mode",
        choices=("binary", "multiclass", "both"),
        default="binary",
        help="binary (default), multiclass, or both (each in its own folder)",
    )
    classifier = what.add_parser(
        "classifier",
        help="the sound classifier, from the classes of the clips (ESC-50 categories, EmoDB emotions, folder names)",
    )
    classifier.add_argument("project", type=Path)
    for parser in (leak, classifier):
        parser.add_argument("--resume", action="store_true", help="continue the last run from its checkpoint")
        parser.add_argument(
            "--set",
            dest="settings",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="change a setting (repeatable), e.g. --set epochs=50 --set patience=10",
        )
        parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"))
    leak.add_argument("--no-score", action="store_true", help="do not score the project's clips afterwards")

    toy = sub.add_parser(
        "toy-set", help="write a synthetic set for the classifiers: leaks (with labels.csv) or sounds (ESC-50 layout)"
    )
    toy.add_argument("kind", choices=("leaks", "sounds"))
    toy.add_argument("out", type=Path)
    toy.add_argument("--count", type=int, default=20, help="files per class (default 20)")
    toy.add_argument("--duration", type=float, default=None, help="seconds per file (default 6 leaks, 2 sounds)")
    toy.add_argument("--seed", type=int, default=0)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.cli import _print_problems, _session
    from engine.detectors.registry import parse_settings
    from engine.jobs import TerminalProgress
    from engine.store import Project

    settings = parse_settings(args.settings)
    with Project.open(args.project) as project, TerminalProgress("training", unit="step") as progress:
        session = _session(project, args)
        if args.train_what == "classifier":
            from engine.classifiers.sound import sound_config, train_sound

            lines = train_sound(session, sound_config(settings), progress, args.resume).lines()
        else:
            from engine.classifiers.leak import train_and_score

            _, lines = train_and_score(session, [args.mode], settings, progress, args.resume, not args.no_score)
    _print_problems(progress)
    print("\n".join(lines))
    return 0


def cmd_toy_set(args: argparse.Namespace) -> int:
    from engine.data.leak_toy import generate_leaks, generate_sounds
    from engine.jobs import TerminalProgress

    with TerminalProgress("synthesising") as progress:
        if args.kind == "leaks":
            generate_leaks(args.out, args.count, args.duration or 6.0, args.seed, progress=progress)
            print(
                f"Wrote the leak set to {args.out}: import it with `earmark import PROJECT {args.out}`, then "
                f"its labels with `earmark labels import PROJECT {args.out / 'labels.csv'}`."
            )
        else:
            generate_sounds(args.out, args.count, args.duration or 2.0, args.seed, progress=progress)
            print(
                f"Wrote the sound set (ESC-50 layout) to {args.out}: import it with "
                f"`earmark import PROJECT {args.out}`."
            )
    return 0
