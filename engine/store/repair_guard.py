"""What keeps `earmark repair` from losing more than the damaged pages.

- The original file is locked exclusively (SQLite's own locks, `locking_mode=EXCLUSIVE` + `BEGIN EXCLUSIVE`)
  before it is copied, and stays locked until the fresh file has replaced it: a window or command with the
  project open holds a lock SQLite honours, so repair refuses instead of replacing a file someone is still
  writing into (their commits would go into the unlinked old file).
- The disk must have room for the copy of the damaged file and the fresh one; copies are written under a
  temporary name and renamed, so a full disk leaves no half copy behind.
- Files a killed repair left behind are removed by the next one.
- Rows that name a model that was lost are removed (scores) or cleared (the model that proposed a region):
  model ids are reused by the next `fit`, and a new model must not inherit a lost one's scores. Region ids,
  which are never reused, keep their counter.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from engine.errors import ProjectError
from engine.store import health

#: How often, and how far apart, taking the lock is tried: a command that is just finishing gets to close.
LOCK_TRIES = 10
LOCK_WAIT_S = 0.2
#: A repair's temporary file untouched for this long was left by a killed repair, not one still running.
STALE_S = 300.0


def lock(database: Path) -> sqlite3.Connection | None:
    """A connection holding an exclusive lock on `database` until it is closed; None when SQLite cannot
    read the file far enough to lock it (its first page is not a database any more: no Earmark process can
    have it open either). Refuses in one line while another connection has the project open."""
    folder = database.parent
    for attempt in range(LOCK_TRIES):
        conn = sqlite3.connect(str(database), timeout=0, isolation_level=None)
        try:
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")  # in WAL mode this takes the file's exclusive lock, kept till close
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()  # a failed try may still hold a shared lock: each try has its own connection
            if health.is_damage(exc):
                return None
            code = health.primary_code(exc)
            if code not in (health.SQLITE_BUSY, health.SQLITE_LOCKED) and "locked" not in str(exc):
                raise health.database_error(folder, exc) from None
        except BaseException:
            conn.close()
            raise
        if attempt + 1 < LOCK_TRIES:
            time.sleep(LOCK_WAIT_S)
    raise ProjectError(
        f"{folder} is open in another Earmark process (a window or a command): close the "
        f"window and other Earmark processes on {folder} first; nothing was changed"
    )


def remove_leftovers(folder: Path, locked: bool) -> int:
    """Remove what a killed repair left in `folder` (its fresh file with -journal/-wal/-shm, a copy cut
    short); with the lock held nothing can still be writing them, else only old ones are removed."""
    cutoff = time.time() - STALE_S
    removed = 0
    for path in [*folder.glob("project.sqlite.repairing-*"), *folder.glob(".project.sqlite.damaged-*.part")]:
        try:
            if locked or path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # gone meanwhile
            continue
    return removed


def check_space(database: Path) -> None:
    """Refuse in one line unless the disk has room for a copy of the damaged file and a fresh one."""
    folder = database.parent
    size = sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.is_file())
    needed = 2 * size + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ProjectError(
            f"the disk holding {folder} has {free / 1e6:.1f} MB free and repairing needs about "
            f"{needed / 1e6:.1f} MB (a copy of the damaged file and a fresh one); nothing was "
            f"changed: free some space and run `earmark repair {folder}` again"
        )


def drop_lost_models(fresh: sqlite3.Connection) -> list[str]:
    """Rows that refer to a model no longer in `models`: removed where the row means nothing without it
    (`ON DELETE CASCADE`: scores), the reference cleared where it is a note (`ON DELETE SET NULL`: the model
    that proposed a region). Returns a line for each kind of row changed."""
    lines = []
    tables = [r[0] for r in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for key in fresh.execute(f'PRAGMA foreign_key_list("{table}")').fetchall():
            if key[2] != "models":
                continue
            column, action = key[3], key[6].upper()
            lost = f'"{column}" IS NOT NULL AND "{column}" NOT IN (SELECT model_id FROM models)'
            if action == "CASCADE":
                count = fresh.execute(f'DELETE FROM "{table}" WHERE {lost}').rowcount
                if count:
                    lines.append(f"{count} {table} of lost models removed: score the clips again")
            elif action == "SET NULL":
                count = fresh.execute(f'UPDATE "{table}" SET "{column}" = NULL WHERE {lost}').rowcount
                if count:
                    lines.append(f"{count} {table} no longer name the lost model that made them")
    return lines


def keep_sequence(source: sqlite3.Connection, fresh: sqlite3.Connection) -> None:
    """Region ids are never reused (the undo stack keeps them): the damaged file's counters carry over."""
    try:
        counters = source.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
    except sqlite3.DatabaseError:
        return
    for name, seq in counters:
        fresh.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", [seq, name])
