"""How an `earmark` command is refused or fails: one line on standard error and an exit status, never a
traceback (a user error, a damaged, read-only or busy project, a full disk, a folder that cannot be written),
130 when interrupted and 141 when the reader of its output goes away. A command that would change a read-only
project is refused before it does any work."""

from __future__ import annotations

import argparse
import errno
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from engine.errors import EarmarkError
from engine.files import disk_full

#: errno values that mean "this place may not be written" rather than "this went wrong while writing".
CANNOT_WRITE = (errno.EROFS, errno.EACCES, errno.EPERM)

#: Commands that change the project (a read-only project refuses them at once); ("labels", "import") and
#: the like for a sub-command.
WRITING = {
    "import",
    "set",
    "fit",
    "score",
    "enrol",
    "train",
    "relocate",
    "propose",
    "threshold",
    ("labels", "import"),
    "repair",
    "debug",
}


def refuse_read_only(args: argparse.Namespace) -> None:
    """A command that changes a read-only project stops before any work, with the reason."""
    from engine.store.health import ReadOnlyProject, read_only_message, read_only_reason

    writes = args.command in WRITING or (args.command, getattr(args, "labels_command", None)) in WRITING
    if args.command == "propose" and getattr(args, "dry_run", False):
        writes = False
    project = getattr(args, "project", None)
    if not writes or project is None:
        return
    folder = project.parent if project.name == "project.sqlite" else project
    reason = (folder / "project.sqlite").is_file() and read_only_reason(folder)
    if reason:
        action = " ".join(w for w in (args.command, getattr(args, "labels_command", None)) if w)
        raise ReadOnlyProject(read_only_message(folder, reason, f"`earmark {action}`"))


def run_reported(args: argparse.Namespace, command: Callable[[], int]) -> int:
    """Run `command`; any failure a user can meet becomes one `earmark: error: ...` line and status 1."""
    try:
        return command()
    except EarmarkError as exc:
        return _error(exc)
    except sqlite3.DatabaseError as exc:  # damaged, read-only, locked, full: one line naming the project
        from engine.store.health import database_error

        return _error(database_error(getattr(args, "project", None) or Path("."), exc))
    except BrokenPipeError:  # `earmark info PROJECT | head`: the reader has gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(
            "earmark: interrupted; the project keeps everything written before the interruption" + _resume_hint(args),
            file=sys.stderr,
        )
        return 130
    # Only OSError reaches here: every SQLite error (sqlite3.OperationalError included, "database or disk is
    # full" too) is a sqlite3.DatabaseError and was answered by the clause above.
    except OSError as exc:
        return _error(disk_full(exc, Path(getattr(args, "project", None) or ".")) or os_error_line(exc))


def _resume_hint(args: argparse.Namespace) -> str:
    """For a training stopped mid-way (`earmark train`, or `fit` of a detector that trains in epochs): how to
    continue it from its last checkpoint."""
    hint = "; the same command with --resume continues the training from its last checkpoint"
    command = getattr(args, "command", None)
    if command == "train":
        return hint
    if command == "fit":
        from engine.detectors.registry import detector_class

        try:
            return hint if callable(getattr(detector_class(args.detector), "branches", None)) else ""
        except (EarmarkError, AttributeError):
            return ""
    return ""


def os_error_line(exc: OSError) -> str:
    """'cannot write OUT/x.csv: Read-only file system' for a place that may not be written, else the file
    and the system's reason, without Python's [Errno N] prefix."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    if exc.errno in CANNOT_WRITE:
        return f"cannot write {where}: {reason}" if where else f"cannot write: {reason}"
    return f"{where}: {reason}" if where else reason


def _error(message: object) -> int:
    print(f"earmark: error: {message}", file=sys.stderr)
    return 1
