"""The `earmark` console script.

Sub-commands (toy, new, import, info, demo, ...) are handed to `engine.cli` without importing Qt, so they
run on machines with no display and start quickly.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from engine.cli import main as cli_main

    return cli_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
