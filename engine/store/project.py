"""A project on disk: a folder with `project.sqlite` (WAL mode) and `artifacts/`.

Each thread gets its own SQLite connection (the engine thread, the GUI thread and the tests never share
one); every multi-row write is a transaction, so an interrupted import leaves the project as it was before
the batch that was being written.

Writers wait for each other: every write transaction (`db.atomic()`, and SQLite's implicit ones) starts with
`BEGIN IMMEDIATE`, taking the write lock before it reads anything. A deferred transaction that read first
and then wanted to write would get "database is locked" at once while another process writes (SQLite cannot
let a reader with an old snapshot upgrade, so its busy timeout does not apply); asking for the lock first
lets SQLite's busy timeout wait, and `BEGIN IMMEDIATE` is retried with a growing pause beyond that.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from engine.audio.io import QA
from engine.data.clip import Clip
from engine.errors import ProjectError
from engine.files import remove_leftovers
from engine.store import health
from engine.store.migrations import APP_ID, LATEST_VERSION, migrate, schema_version

DB_NAME = "project.sqlite"
ARTIFACTS = "artifacts"
#: SQLite's own wait for a lock another connection holds, per attempt (seconds).
BUSY_TIMEOUT_S = 5.0
#: How long a write waits in all for another process before it gives up with a message (seconds); a thread
#: with its own `on_wait` (the window's) waits as long as it takes.
WRITE_WAIT_S = 600.0
#: The pause between attempts to take the write lock grows from the first to the last (seconds).
RETRY_PAUSES_S = (0.05, 1.0)


@dataclass(frozen=True)
class LabelClass:
    name: str
    colour: str
    shortcut: str | None
    position: int


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLite said another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED, any extended code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class ProjectDatabase(sqlite_utils.Database):
    """sqlite-utils' Database whose outermost `atomic()` takes the write lock first (`BEGIN IMMEDIATE`,
    waiting for other writers); nested ones are savepoints as before."""

    def __init__(self, conn: sqlite3.Connection, project: Project) -> None:
        super().__init__(conn)
        self.project = project

    @contextlib.contextmanager
    def atomic(self) -> Iterator[ProjectDatabase]:
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        self.project._begin_writing(self.conn)
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise


class Project:
    """Open with `Project.open(folder)` or make one with `Project.create(folder)`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db_path = folder / DB_NAME
        self.artifacts = folder / ARTIFACTS
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: Why the project can only be read (a read-only file system, ...), or None; set by `open`.
        self.read_only: str | None = None
        self._target = str(self.db_path)  # what sqlite3.connect opens: a read-only project's URI

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path) -> Project:
        folder = Path(folder)
        if (folder / DB_NAME).exists():
            raise ProjectError(f"{folder} already holds a project; open it instead of creating it again")
        if folder.exists() and not folder.is_dir():
            raise ProjectError(f"{folder} is a file; choose a folder for the new project")
        try:
            (folder / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder {folder}: {exc.strerror}") from None
        project = cls(folder)
        try:
            db = project.db
            db.enable_wal()
            migrate(db)
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", [now()])
            db.conn.commit()
        except sqlite3.DatabaseError as exc:  # a full disk, say: the one message, for the window too
            project.close()
            raise health.database_error(folder, exc) from None
        return project

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        """Open a project; a damaged file, a bad schema version or a read-only folder is named in one
        ProjectError and nothing is written. A read-only project opens for reading (`read_only` says why)."""
        folder = Path(folder)
        if folder.name == DB_NAME and folder.is_file():
            folder = folder.parent
        if not (folder / DB_NAME).is_file():
            raise ProjectError(f"no project at {folder}; create one with `earmark new {folder}`")
        project = cls(folder)
        project.read_only = health.read_only_reason(folder)
        if project.read_only:
            project._target = health.read_only_uri(project.db_path)
        try:
            db = project.db
            tables = db.table_names()
            if "meta" not in tables:
                raise ProjectError(f"{project.db_path} is an SQLite file but not an Earmark project")
            row = db.execute("SELECT value FROM meta WHERE key = 'application'").fetchone()
            if row is None or row[0] != APP_ID:
                raise ProjectError(f"{project.db_path} is an SQLite file but not an Earmark project")
            version = schema_version(db)
            if version > LATEST_VERSION:
                raise ProjectError(
                    f"{folder} was written by a newer Earmark (schema {version}; this version reads up to "
                    f"{LATEST_VERSION}); update Earmark to open it"
                )
            problems = health.quick_check(db.conn)
            if problems:
                raise health.DamagedProject(folder, "; ".join(problems[:2]))
            if version < LATEST_VERSION:
                if project.read_only:
                    raise health.ReadOnlyProject(
                        health.read_only_message(
                            folder,
                            project.read_only,
                            f"bringing it up to this Earmark's schema ({version} to {LATEST_VERSION})",
                        )
                    )
                migrate(db)
        except sqlite3.DatabaseError as exc:
            project.close()
            if "not a database" in str(exc):
                raise ProjectError(f"{project.db_path} is not an Earmark project ({exc})") from None
            raise health.database_error(folder, exc) from None  # damaged, locked, full: its own line
        except ProjectError:
            project.close()
            raise
        if not project.read_only:
            (folder / ARTIFACTS).mkdir(exist_ok=True)
            remove_leftovers(folder / ARTIFACTS)  # temporary files a killed process left (see engine.files)
        return project

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            # Each thread only uses its own connection; check_same_thread=False just lets close() end them all.
            # Implicit transactions (a bare INSERT before conn.commit()) take the write lock first as well.
            conn = sqlite3.connect(
                self._target,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
                isolation_level="IMMEDIATE",
                uri=bool(self.read_only),
            )
            conn.execute("PRAGMA foreign_keys = ON")
            db = ProjectDatabase(conn, self)
            self._local.db = db
            with self._lock:
                self._connections.append(conn)
        return db

    def on_wait(self, callback: Callable[[float], None] | None, step_s: float = 0.25) -> None:
        """While this thread's writes wait for another process's write lock, call `callback(seconds waited)`
        about every `step_s` (the window shows that it waits and keeps drawing). Such a thread waits as long
        as it takes; the callback may raise to give up. None: back to printing one notice on stderr and giving
        up after `WRITE_WAIT_S`."""
        self._local.on_wait = callback
        timeout_s = BUSY_TIMEOUT_S if callback is None else step_s
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")

    def _begin_writing(self, conn: sqlite3.Connection) -> None:
        """`BEGIN IMMEDIATE`, retried with a growing pause while another process holds the write lock."""
        started = time.monotonic()
        pause, longest = RETRY_PAUSES_S
        noticed = False
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            waited = time.monotonic() - started
            callback = getattr(self._local, "on_wait", None)
            if callback is not None:  # the busy timeout, one step long, was the pause
                callback(waited)
                continue
            if waited >= WRITE_WAIT_S:
                raise ProjectError(
                    f"another Earmark process has been writing {self.folder} for {waited:.0f} s; "
                    "nothing was changed: try again when it has finished"
                ) from None
            if not noticed:  # a command line: say why it seems to hang, once
                print(
                    f"earmark: waiting for another Earmark process to finish writing {self.folder} ...",
                    file=sys.stderr,
                    flush=True,
                )
                noticed = True
            time.sleep(pause)
            pause = min(pause * 2, longest)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clips ---------------------------------------------------------------------------------------
    def clip_sources(self, clip_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Where each clip (or each of `clip_ids` the project holds) came from: the import format, or "inbox"
        for files dropped on the window. Given ids, only their rows are read (a drop of a few files into a
        project of 100 000 clips)."""
        if clip_ids is None:
            return dict(self.db.execute("SELECT clip_id, coalesce(source, '') FROM clips").fetchall())
        ids, found = list(dict.fromkeys(clip_ids)), {}
        for start in range(0, len(ids), 500):  # within SQLite's limit on bound values
            chunk = ids[start : start + 500]
            found.update(
                self.db.execute(
                    f"SELECT clip_id, coalesce(source, '') FROM clips WHERE clip_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
        return found

    def clip_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT clip_id FROM clips")}

    def count_clips(self, source: str | None = None) -> int:
        """How many clips the project holds (or how many came from `source`, e.g. "inbox"), counted in SQL."""
        if source is None:
            return int(self.db.execute("SELECT count(*) FROM clips").fetchone()[0])
        return int(self.db.execute("SELECT count(*) FROM clips WHERE source = ?", [source]).fetchone()[0])

    def add_clips(self, clips: Iterable[Clip], source: str) -> int:
        """Insert clips (and their ground-truth anomaly regions) in one transaction; returns how many. A clip
        whose file (checksum) the project holds by then is skipped: another process importing the same files
        at the same time wrote it after the caller looked."""
        stamp = now()
        rows, regions = [], []
        for clip in clips:
            qa = clip.qa or QA(float("nan"), float("nan"), float("nan"), float("nan"))
            rows.append(
                [
                    clip.clip_id,
                    clip.path,
                    clip.checksum,
                    clip.format,
                    clip.channels,
                    clip.sample_rate,
                    clip.duration_s,
                    clip.machine_type,
                    clip.section_id,
                    clip.domain,
                    clip.split,
                    clip.label,
                    json.dumps(dict(clip.attributes), sort_keys=True),
                    qa.rms,
                    qa.peak,
                    qa.clipping_ratio,
                    qa.silence_ratio,
                    source,
                    stamp,
                    clip.file_size,
                    clip.file_mtime,
                    clip.channel,
                ]
            )
            regions += [
                [clip.clip_id, start, end, "anomaly", "truth", stamp, stamp] for start, end in clip.anomaly_regions
            ]
        db = self.db
        with db.atomic():
            held = self.held_checksums(row[2] for row in rows)
            if held:
                skipped = {row[0] for row in rows if row[2] in held}
                rows = [row for row in rows if row[0] not in skipped]
                regions = [region for region in regions if region[0] not in skipped]
            db.conn.executemany(
                "INSERT INTO clips (clip_id, path, checksum, format, channels, sample_rate, duration_s, "
                "machine_type, section_id, domain, split, label, attributes, qa_rms, qa_peak, "
                "qa_clipping_ratio, qa_silence_ratio, source, imported_at, file_size, file_mtime, channel) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.conn.executemany(
                "INSERT INTO regions (clip_id, start_s, end_s, label, kind, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                regions,
            )
        return len(rows)

    def held_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        """checksum -> clip_id of those of `checksums` the project holds."""
        wanted = list(dict.fromkeys(checksums))
        held: dict[str, str] = {}
        for start in range(0, len(wanted), 500):  # under SQLite's limit on parameters
            chunk = wanted[start : start + 500]
            held.update(
                self.db.execute(
                    f"SELECT checksum, clip_id FROM clips WHERE checksum IN ({', '.join('?' for _ in chunk)})", chunk
                ).fetchall()
            )
        return held

    def clips(self, **where: str | None) -> list[Clip]:
        """Clips in import order, filtered by equality on columns (machine_type="fan", split="train", ...)."""
        allowed = {"machine_type", "section_id", "domain", "split", "label", "clip_id"}
        unknown = set(where) - allowed
        if unknown:
            raise ValueError(f"cannot filter clips by {', '.join(sorted(unknown))}")
        condition = " AND ".join(f"c.{key} IS ?" for key in where) or "1"
        values = list(where.values())
        regions: dict[str, list[tuple[float, float]]] = {}
        for clip_id, start, end in self.db.execute(  # the truth regions of just these clips
            "SELECT r.clip_id, r.start_s, r.end_s FROM regions r JOIN clips c ON c.clip_id = r.clip_id "
            f"WHERE r.kind = 'truth' AND {condition} ORDER BY r.clip_id, r.start_s",
            values,
        ):
            regions.setdefault(clip_id, []).append((start, end))
        rows = self.db.execute_returning_dicts(f"SELECT * FROM clips c WHERE {condition} ORDER BY c.rowid", values)
        return [self._clip_from_row(row, regions.get(row["clip_id"], ())) for row in rows]

    def clip(self, clip_id: str) -> Clip:
        found = self.clips(clip_id=clip_id)
        if not found:
            raise ProjectError(f"no clip {clip_id!r} in {self.folder}")
        return found[0]

    def summary(self) -> list[dict]:
        """Clip counts and total duration by machine, section, domain, split and label."""
        return self.db.execute_returning_dicts(
            "SELECT machine_type, section_id, domain, split, label, count(*) AS clips, "
            "sum(duration_s) AS duration_s FROM clips "
            "GROUP BY machine_type, section_id, domain, split, label "
            "ORDER BY machine_type, section_id, domain, split, label"
        )

    def label_classes(self) -> list[LabelClass]:
        return [
            LabelClass(r["name"], r["colour"], r["shortcut"], r["position"])
            for r in self.db.execute_returning_dicts("SELECT * FROM label_classes ORDER BY position")
        ]

    @staticmethod
    def _clip_from_row(row: dict, regions: Iterable[tuple[float, float]]) -> Clip:
        qa = (
            None
            if row["qa_rms"] is None
            else QA(row["qa_rms"], row["qa_peak"], row["qa_clipping_ratio"], row["qa_silence_ratio"])
        )
        return Clip(
            clip_id=row["clip_id"],
            path=row["path"],
            sample_rate=row["sample_rate"],
            duration_s=row["duration_s"],
            machine_type=row["machine_type"],
            section_id=row["section_id"],
            domain=row["domain"],
            split=row["split"],
            label=row["label"],
            attributes=json.loads(row["attributes"]),
            anomaly_regions=tuple(regions),
            qa=qa,
            checksum=row["checksum"],
            channels=row["channels"] or 1,
            format=row["format"] or "",
            channel=row.get("channel"),
            file_size=row.get("file_size"),
            file_mtime=row.get("file_mtime"),
        )
