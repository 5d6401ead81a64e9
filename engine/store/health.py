"""What can be wrong with a project's SQLite file, and the one message each problem gets.

A damaged page (a disk or power failure, a copy cut short), a folder the user may only read, and a lock held
by another process all reach Python as `sqlite3.DatabaseError`. `database_error` turns any of them into a
`ProjectError` that names the project, says that nothing was changed and what to do, so that neither the
command line nor the window ever shows a raw `database disk image is malformed`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from engine.errors import EarmarkError, ProjectError
from engine.files import disk_full

# SQLite's primary result codes (an extended code keeps its primary code in the low byte).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_FULL, SQLITE_CORRUPT, SQLITE_NOTADB = 5, 6, 8, 13, 11, 26
SQLITE_IOERR = 10
#: Free space below which an I/O error is taken for a full disk: SQLite reports a -wal or -shm file it could
#: not create or grow on a full disk as a plain disk I/O error, not as SQLITE_FULL.
FULL_BELOW_BYTES = 1 << 20


class DamagedProject(ProjectError):
    """A project whose SQLite file fails SQLite's own checks: `earmark repair` recovers what can be read."""

    def __init__(self, folder: Path, detail: str) -> None:
        self.folder = folder
        self.detail = detail
        super().__init__(damaged_message(folder, detail))


class ReadOnlyProject(ProjectError):
    """A change asked of a project that can only be read."""


def damaged_message(folder: Path, detail: str) -> str:
    reason = read_only_reason(folder)
    if reason:  # repair writes beside the file: it must run on a writable copy
        return (
            f"{folder / 'project.sqlite'} is damaged ({detail}); nothing was changed. The project is read-only "
            f"({reason}): copy the project folder to a writable place and run `earmark repair` on the copy "
            "to recover what can still be read"
        )
    return (
        f"{folder / 'project.sqlite'} is damaged ({detail}); nothing was changed. Run `earmark repair "
        f"{folder}` to recover what can still be read into a fresh file (the damaged one is kept aside)"
    )


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error means the file itself is damaged (not locked, read-only or full)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = primary_code(exc)
    if code is not None:
        return code in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def database_error(folder: str | Path, exc: sqlite3.Error) -> EarmarkError:
    """The one-line message for an SQLite error met while using the project in `folder`."""
    folder = Path(folder)
    if folder.name == "project.sqlite":
        folder = folder.parent
    code = primary_code(exc)
    text = str(exc)
    if is_damage(exc):
        return DamagedProject(folder, text)
    if code == SQLITE_READONLY or "readonly database" in text:
        return ReadOnlyProject(read_only_message(folder, read_only_reason(folder) or text))
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in text:
        return ProjectError(
            f"{folder} is busy: another Earmark process is writing to it ({text}); nothing was "
            "changed here; try again when it has finished"
        )
    if code == SQLITE_FULL or "database or disk is full" in text:  # the same line as a full disk elsewhere
        return disk_full(exc, folder) or ProjectError(f"the disk holding {folder} is full ({text})")
    if (code == SQLITE_IOERR or "disk i/o error" in text.lower()) and _nearly_full(folder):
        return disk_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), folder)
    return ProjectError(f"{folder / 'project.sqlite'} cannot be used ({text}); nothing was changed")


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's `PRAGMA quick_check` (every page and record, not the indexes' contents): empty when the file
    is sound, else its first few findings."""
    rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if rows == ["ok"]:
        return []
    # One line each, without SQLite's "*** in database main ***" heading.
    text = "\n".join(str(row) for row in rows).replace("*** in database main ***", "\n")
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line]


# -- read-only projects --------------------------------------------------------------------------------
def read_only_reason(folder: Path) -> str | None:
    """Why the project in `folder` can only be read (a read-only file system, an immutable or read-only
    file), or None when it can be written. Root passes permission checks, but not these."""
    database = folder / "project.sqlite"
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if not os.access(database, os.W_OK):
        return "its file project.sqlite may not be written"
    if not os.access(folder, os.W_OK):
        return "its folder may not be written"
    return None


def read_only_message(folder: Path, reason: str, action: str = "") -> str:
    doing = f"{action} changes the project" if action else "this changes the project"
    return (
        f"{folder} is read-only: {reason}. Earmark can browse it, play its clips and export elsewhere, "
        f"but {doing}; copy the project folder to a writable place to change it"
    )


def read_only_uri(database: Path) -> str:
    """An SQLite URI that reads `database` without writing anything next to it.

    A WAL database is read through its -wal and -shm files when they are there; when they are not, and
    cannot be created on a read-only folder, the file holds everything (a clean close checkpoints it) and
    is opened as immutable. A -wal holding changes with no -shm beside it cannot be read there: refused."""
    path = database.resolve().as_uri()
    wal = Path(f"{database}-wal")
    shm = Path(f"{database}-shm")
    if wal.exists() and shm.exists():
        return f"{path}?mode=ro"
    if wal.exists() and wal.stat().st_size > 0:
        # Changes not yet folded into the file (a process killed, a copy taken while open). Opened as
        # immutable, SQLite would ignore them and show older data as if it were current; without the -shm
        # file, which cannot be created here, the log cannot be read at all.
        folder = database.parent
        raise ReadOnlyProject(
            f"{folder} is read-only, and its latest changes are in {wal.name}, which cannot "
            "be read on a read-only disk; copy the project folder to a writable place to "
            "open it"
        )
    return f"{path}?immutable=1"
