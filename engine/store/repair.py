"""`earmark repair PROJECT`: rebuild a damaged `project.sqlite` from what SQLite can still read.

The project is locked first, so that no window or command writes into a file about to be replaced, and
the disk must have room for two copies (`engine.store.repair_guard`). The damaged file (with its -wal) is
then copied aside, atomically, as `project.sqlite.damaged-<stamp>`. A fresh file gets this Earmark's
schema from the project's own migrations; every table of the damaged copy is then read row by row in rowid
order, and where a page cannot be read the reader probes forward (doubling, then halving the step) to the
first rowid it can read again, so one bad page costs only the rows on it. The indexes are built anew, the
fresh file passes `integrity_check`, and only then does it replace the damaged one. Leaf pages SQLite can no
longer reach (under a damaged root or interior page, or with the schema page itself damaged) are read
straight from the file (`engine.store.pages`). The report says per table how many rows were recovered and
how many were lost (counted from an index where the table itself cannot be counted). Audio and `artifacts/`
are not touched.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from engine.errors import ProjectError
from engine.files import copy_atomic, disk_full
from engine.store import health
from engine.store import repair_guard as guard
from engine.store.migrations import APP_ID, LATEST_VERSION, migrate

DB_NAME = "project.sqlite"
MAX_ROWID = 2**63 - 1


@dataclass
class TableReport:
    name: str
    recovered: int = 0
    lost: int | None = 0  # None: some rows were lost and how many cannot be told
    refused: int = 0  # rows read but refused by the schema (a duplicate key, a failed CHECK)


@dataclass
class RepairReport:
    folder: Path
    damaged_copy: Path | None
    tables: list[TableReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: bool = True

    def lines(self) -> list[str]:
        if not self.repaired:
            return [
                f"{self.folder / DB_NAME} passes SQLite's checks and its schema is readable; nothing to "
                "repair (nothing was changed)"
            ]
        lines = [f"Repaired {self.folder / DB_NAME}; the damaged file is kept as {self.damaged_copy}"]
        for table in self.tables:
            lost = "some lost (how many cannot be told)" if table.lost is None else f"{table.lost} lost"
            refused = f", {table.refused} refused by the schema" if table.refused else ""
            lines.append(f"  {table.name}: {table.recovered} row(s) recovered, {lost}{refused}")
        return lines + [f"  note: {p}" for p in self.problems]


def needs_repair(database: Path) -> bool:
    """Whether the file fails quick_check or its schema version cannot be read."""
    try:
        with contextlib.closing(_connect(database)) as conn:
            if health.quick_check(conn):
                return True
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and not str(row[0]).isdigit():
                return True
    except sqlite3.DatabaseError as exc:
        if health.is_damage(exc):
            return True
        raise health.database_error(database.parent, exc) from None
    return False


def repair(folder: str | Path, force: bool = False) -> RepairReport:
    folder = Path(folder)
    if folder.name == DB_NAME:
        folder = folder.parent
    database = folder / DB_NAME
    if not database.is_file():
        raise ProjectError(f"no project at {folder}; nothing to repair")
    reason = health.read_only_reason(folder)
    if reason:
        raise health.ReadOnlyProject(health.read_only_message(folder, reason, "repairing"))
    if not force and not needs_repair(database):
        guard.remove_leftovers(folder, locked=False)
        return RepairReport(folder, None, repaired=False)
    # No other process may write the file while it is copied and replaced: its commits would be lost.
    lock = guard.lock(database)
    try:
        return _repair_locked(folder, database, lock is not None)
    finally:
        if lock is not None:
            lock.close()


def _repair_locked(folder: Path, database: Path, locked: bool) -> RepairReport:
    leftovers = guard.remove_leftovers(folder, locked)
    guard.check_space(database)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    damaged = folder / f"{DB_NAME}.damaged-{stamp}"
    for number in range(2, 1000):  # an earlier repair's copy is never overwritten
        if not damaged.exists():
            break
        damaged = folder / f"{DB_NAME}.damaged-{stamp}-{number}"
    wal = Path(f"{database}-wal")
    fresh = Path(str(damaged).replace(".damaged-", ".repairing-"))
    report = RepairReport(folder, damaged)
    if leftovers:
        report.problems.append(f"{leftovers} file(s) left by an earlier repair that was stopped were removed")
    try:
        copy_atomic(database, damaged)
        if wal.is_file():  # the copy reads as the original did: with its write-ahead log
            copy_atomic(wal, Path(f"{damaged}-wal"))
        # With a write-ahead log, the file's pages may be older than the rows SQLite read: only SQLite's
        # reading counts then.
        logged = Path(f"{damaged}-wal").is_file() and Path(f"{damaged}-wal").stat().st_size > 0
        _rebuild(damaged, fresh, report, read_pages=not logged)
        if not any(t.recovered for t in report.tables):
            raise ProjectError(
                f"nothing in {database} can be read any more; it was left as it was. Make a new "
                "project and import the audio again"
            )
    except BaseException as exc:  # the project stays as it was, without a second copy of it
        for path in (fresh, damaged):
            for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
                part.unlink(missing_ok=True)
        full = disk_full(exc, database) if isinstance(exc, (OSError, sqlite3.OperationalError)) else None
        if full is not None:
            raise full from None
        raise
    # The old -wal and -shm belong to the damaged file (kept with its copy): SQLite must not replay them on
    # the fresh one.
    for leftover in (wal, Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    fresh.replace(database)
    return report


def _rebuild(source_path: Path, fresh_path: Path, report: RepairReport, read_pages: bool) -> None:
    fresh = sqlite3.connect(str(fresh_path))
    source = _connect(source_path, read_only=False)
    try:
        db = sqlite_utils.Database(fresh)
        migrate(db)
        known = _tables(fresh)
        source_tables = _source_tables(source, report)
        version = _source_version(source)
        if version is not None and version > LATEST_VERSION:
            raise ProjectError(
                f"{report.folder} was written by a newer Earmark (schema {version}); repair it with that version"
            )
        for name in known:
            if name == "sqlite_sequence":
                continue
            table = TableReport(name)
            report.tables.append(table)
            if name not in source_tables and source_tables:
                continue  # an older project without this table: nothing to recover, nothing lost
            _copy_table(source, fresh, name, table, report)
        if read_pages and any(t.lost is None or t.lost for t in report.tables):
            _recover_from_pages(source_path, source, fresh, report)
        guard.keep_sequence(source, fresh)
        report.problems += guard.drop_lost_models(fresh)  # the next fit may reuse a lost model's id
        fresh.execute("REINDEX")
        fresh.commit()
        problems = health.quick_check(fresh) or [
            r[0] for r in fresh.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"
        ]
        if problems:
            raise ProjectError(f"the rebuilt file fails SQLite's check ({problems[0]}); nothing was changed")
        dangling = fresh.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            tables = sorted({row[0] for row in dangling})
            report.problems.append(
                f"{len(dangling)} row(s) of {', '.join(tables)} refer to clips that were "
                "lost; they are kept (import the audio again to see them)"
            )
        fresh.execute("PRAGMA journal_mode = WAL")
    finally:
        source.close()
        fresh.close()


def _connect(database: Path, read_only: bool = True) -> sqlite3.Connection:
    mode = "ro" if read_only else "rw"
    return sqlite3.connect(f"{database.resolve().as_uri()}?mode={mode}", uri=True)


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rootpage")]


def _source_tables(source: sqlite3.Connection, report: RepairReport) -> set[str]:
    try:
        return set(_tables(source))
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the damaged file's list of tables cannot be read ({exc})")
        return set()


def _source_version(source: sqlite3.Connection) -> int | None:
    try:
        row = source.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None
    except (sqlite3.DatabaseError, TypeError, ValueError):
        return None


def _copy_table(
    source: sqlite3.Connection, fresh: sqlite3.Connection, name: str, table: TableReport, report: RepairReport
) -> None:
    try:
        source_columns = [r[1] for r in source.execute(f'PRAGMA table_info("{name}")').fetchall()]
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{name}: its columns cannot be read ({exc})")
        table.lost = None
        return
    columns = [c for c in (r[1] for r in fresh.execute(f'PRAGMA table_info("{name}")')) if c in source_columns]
    if not columns:
        return
    quoted = ", ".join(f'"{c}"' for c in columns)
    selected = f"rowid, {quoted}"  # rows keep their rowids: pages read directly later are matched by them
    defaults = fresh.execute(f'SELECT {selected} FROM "{name}"').fetchall() if name == "label_classes" else []
    if name == "label_classes":  # the user's classes, not the defaults (unless every one of them is lost)
        fresh.execute('DELETE FROM "label_classes"')
    # meta: the damaged file's values win, but its schema version is this Earmark's now
    verb = "INSERT OR REPLACE" if name == "meta" else "INSERT"
    insert = f'{verb} INTO "{name}" ({selected}) VALUES (?, {", ".join("?" for _ in columns)})'
    gaps = False
    for row in _rows(source, name, selected):
        if row is None:
            gaps = True
            continue
        if name == "meta" and row[1 + columns.index("key")] == "schema_version":
            table.recovered += 1
            continue
        try:
            fresh.execute(insert, row)
            table.recovered += 1
        except sqlite3.IntegrityError:
            table.refused += 1
    expected = _count(source, name)
    if expected is not None:
        table.lost = max(expected - table.recovered - table.refused, 0)
    elif gaps:
        table.lost = None
    if name == "label_classes" and not table.recovered:
        fresh.executemany(insert, defaults)
    if name == "meta":  # what makes the file an Earmark project, whatever was lost
        fresh.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('application', ?)", [APP_ID])


def _rows(source: sqlite3.Connection, name: str, columns: str) -> Iterator[tuple | None]:
    """Every readable row in rowid order; None once for each stretch that cannot be read.

    Queries seek with `rowid >= start`: a seek lands on the leaf page of `start` itself, so a start just past
    a damaged page reads the page after it, not the damaged one."""
    start = -MAX_ROWID - 1
    query = f'SELECT rowid, {columns} FROM "{name}" WHERE rowid >= ? ORDER BY rowid'
    while True:
        try:
            for rowid, *values in source.execute(query, [start]):
                start = rowid + 1
                yield tuple(values)
            return
        except sqlite3.DatabaseError:
            # The cursor reads a row ahead of the one it hands out: the rows up to the damage are read again
            # one query each, so no readable row next to a damaged page is lost.
            while True:
                try:
                    found = source.execute(query + " LIMIT 1", [start]).fetchone()
                except sqlite3.DatabaseError:
                    break
                if found is None:
                    return
                start = found[0] + 1
                yield tuple(found[1:])
            yield None
            resume = _next_readable(source, name, start)
            if resume is None:
                return
            start = resume
        if start > MAX_ROWID:
            return


def _next_readable(source: sqlite3.Connection, name: str, start: int) -> int | None:
    """The smallest rowid from which reading forward works again (rows from `start` up to it sit on damaged
    pages), or None when nothing from `start` on can be read."""

    def readable(first: int) -> bool:
        try:
            source.execute(f'SELECT rowid FROM "{name}" WHERE rowid >= ? ORDER BY rowid LIMIT 1', [first]).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    low, step = start, 1  # readable(low) is False: the read from `start` just failed
    while True:
        high = min(start + step, MAX_ROWID)
        if readable(high):
            break
        if high == MAX_ROWID:
            return None
        low, step = high, step * 2
    while high - low > 1:  # readable(low) is False, readable(high) is True
        middle = (low + high) // 2
        if readable(middle):
            high = middle
        else:
            low = middle
    return high


def _recover_from_pages(
    source_path: Path, source: sqlite3.Connection, fresh: sqlite3.Connection, report: RepairReport
) -> None:
    """Rows SQLite could not reach (under a damaged root or interior page) read from the leaf pages
    themselves. A row is taken for a table that lost rows when its values fit that table's columns and no
    other's, and its rowid is not there yet."""
    from engine.store.pages import leaf_rows

    damaged = {t.name: t for t in report.tables if t.lost is None or t.lost}
    skip: set[int] = set()
    for table in report.tables:  # the pages of intact tables were read through SQLite already
        if table.name not in damaged:
            try:
                skip.update(r[0] for r in source.execute("SELECT pageno FROM dbstat WHERE name = ?", [table.name]))
            except sqlite3.DatabaseError:
                pass
    shapes = {name: _shape(source, fresh, name) for name in damaged}
    shapes = {name: shape for name, shape in shapes.items() if shape}
    try:
        rows = list(leaf_rows(source_path, skip))
    except (OSError, ValueError) as exc:
        report.problems.append(f"the file's pages could not be read directly ({exc})")
        return
    found = 0
    for rowid, values in rows:
        fits = [name for name, shape in shapes.items() if _fits(values, shape)]
        if len(fits) != 1:
            continue
        name = fits[0]
        columns = [column for column, _, _, _ in shapes[name]][: len(values)]
        if fresh.execute(f'SELECT 1 FROM "{name}" WHERE rowid = ?', [rowid]).fetchone():
            continue
        values = [rowid if alias else v for v, (_, _, _, alias) in zip(values, shapes[name], strict=False)]
        quoted = ", ".join(f'"{c}"' for c in columns)
        try:
            fresh.execute(
                f'INSERT INTO "{name}" (rowid, {quoted}) VALUES (?, {", ".join("?" for _ in columns)})',
                [rowid, *values],
            )
        except sqlite3.IntegrityError:
            continue
        table = damaged[name]
        table.recovered += 1
        if table.lost:
            table.lost -= 1
        found += 1
    if found:
        report.problems.append(f"{found} row(s) were read from pages SQLite could no longer reach")


def _shape(source: sqlite3.Connection, fresh: sqlite3.Connection, name: str) -> list[tuple] | None:
    """(column, declared type, not null, is the rowid) of each column of the damaged file's table."""
    try:
        info = source.execute(f'PRAGMA table_info("{name}")').fetchall()
    except sqlite3.DatabaseError:  # the damaged file's schema is unreadable: this Earmark's schema instead
        info = fresh.execute(f'PRAGMA table_info("{name}")').fetchall()
    keys = [r for r in info if r[5]]
    wanted = {r[1] for r in fresh.execute(f'PRAGMA table_info("{name}")')}
    if any(r[1] not in wanted for r in info):
        return None
    return [
        (r[1], (r[2] or "").upper(), bool(r[3]), len(keys) == 1 and r[5] and (r[2] or "").upper() == "INTEGER")
        for r in info
    ]


def _fits(values: list, shape: list[tuple]) -> bool:
    """Whether a record's values can be a row of a table of this shape (the rowid column is stored as NULL;
    columns added later may be missing at the end)."""
    if not values or len(values) > len(shape):
        return False
    for value, (_, kind, not_null, alias) in zip(values, shape, strict=False):
        if alias:
            if value is not None:
                return False
        elif value is None:
            if not_null:
                return False
        elif "INT" in kind and not isinstance(value, int):
            return False
        elif ("REAL" in kind or "FLOA" in kind) and not isinstance(value, (int, float)):
            return False
        elif ("TEXT" in kind or "CHAR" in kind) and not isinstance(value, str):
            return False
    return all(not not_null for _, _, not_null, _ in shape[len(values) :]) or len(values) == len(shape)


def _count(source: sqlite3.Connection, name: str) -> int | None:
    """How many rows the table had: counted by SQLite (it may count an index), else by each of its indexes."""
    attempts = [f'SELECT count(*) FROM "{name}"']
    try:
        attempts += [
            f'SELECT count(*) FROM "{name}" INDEXED BY "{r[1]}"'
            for r in source.execute(f'PRAGMA index_list("{name}")').fetchall()
        ]
    except sqlite3.DatabaseError:
        pass
    for sql in attempts:
        try:
            return int(source.execute(sql).fetchone()[0])
        except sqlite3.DatabaseError:
            continue
    return None
