"""Numbered schema migrations, applied in order when a project opens; applying them again changes nothing.

`meta.schema_version` records the last one applied. A new migration is appended to `MIGRATIONS`; an
existing one is never edited once released.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from engine.errors import ProjectError

APP_ID = "earmark"


def _v1_initial(db: sqlite_utils.Database) -> None:
    _run_statements(
        db,
        """
        CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        CREATE TABLE IF NOT EXISTS clips (
            clip_id TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            checksum TEXT NOT NULL,
            format TEXT,
            channels INTEGER,
            sample_rate INTEGER NOT NULL,
            duration_s REAL NOT NULL,
            machine_type TEXT,
            section_id TEXT,
            domain TEXT CHECK (domain IN ('source', 'target')),
            split TEXT CHECK (split IN ('train', 'test', 'supplemental')),
            label TEXT CHECK (label IN ('normal', 'anomaly')),
            attributes TEXT NOT NULL DEFAULT '{}',
            qa_rms REAL,
            qa_peak REAL,
            qa_clipping_ratio REAL,
            qa_silence_ratio REAL,
            source TEXT,
            imported_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS clips_checksum ON clips (checksum);
        CREATE INDEX IF NOT EXISTS clips_group ON clips (machine_type, section_id, domain, split);
        CREATE TABLE IF NOT EXISTS models (
            model_id INTEGER PRIMARY KEY,
            detector TEXT NOT NULL,
            group_key TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',
            artifact TEXT,
            threshold REAL,
            metrics TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS models_detector ON models (detector, group_key);
        CREATE TABLE IF NOT EXISTS regions (
            region_id INTEGER PRIMARY KEY,
            clip_id TEXT NOT NULL REFERENCES clips (clip_id) ON DELETE CASCADE,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            low_hz REAL,
            high_hz REAL,
            label TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('truth', 'manual', 'proposal')),
            model_id INTEGER REFERENCES models (model_id) ON DELETE SET NULL,
            confidence REAL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            CHECK (end_s > start_s)
        );
        CREATE INDEX IF NOT EXISTS regions_clip ON regions (clip_id, kind);
        CREATE TABLE IF NOT EXISTS label_classes (
            name TEXT PRIMARY KEY,
            colour TEXT NOT NULL,
            shortcut TEXT,
            position INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS jobs (
            job_id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            message TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE TABLE IF NOT EXISTS scores (
            model_id INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
            clip_id TEXT NOT NULL REFERENCES clips (clip_id) ON DELETE CASCADE,
            score REAL NOT NULL,
            decision INTEGER NOT NULL,
            map_artifact TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (model_id, clip_id)
        );
        """,
    )
    # None of them red or orange: red is the ground truth's colour on the spectrogram.
    defaults = [
        ("LEAK", "#f032e6", "1"),
        ("NORMAL", "#3cb44b", "2"),
        ("QUIET", "#4363d8", "3"),
        ("RANDOM", "#469990", "4"),
        ("MECHANICAL", "#911eb4", "5"),
    ]
    for position, (name, colour, shortcut) in enumerate(defaults):
        db.execute(
            "INSERT OR IGNORE INTO label_classes (name, colour, shortcut, position) VALUES (?, ?, ?, ?)",
            [name, colour, shortcut, position],
        )


def _v2_region_ids_never_reused(db: sqlite_utils.Database) -> None:
    """Region ids are kept by the GUI's undo stack (undoing a delete puts the region back under its id), so a
    deleted region's id must never be handed to a new region: AUTOINCREMENT. SQLite cannot add it to a
    table, so the table is copied."""
    _run_statements(
        db,
        """
        CREATE TABLE regions_v2 (
            region_id INTEGER PRIMARY KEY AUTOINCREMENT,
            clip_id TEXT NOT NULL REFERENCES clips (clip_id) ON DELETE CASCADE,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            low_hz REAL,
            high_hz REAL,
            label TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('truth', 'manual', 'proposal')),
            model_id INTEGER REFERENCES models (model_id) ON DELETE SET NULL,
            confidence REAL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            CHECK (end_s > start_s)
        );
        INSERT INTO regions_v2 SELECT region_id, clip_id, start_s, end_s, low_hz, high_hz, label, kind, model_id,
            confidence, created_at, updated_at FROM regions;
        DROP TABLE regions;
        ALTER TABLE regions_v2 RENAME TO regions;
        CREATE INDEX IF NOT EXISTS regions_clip ON regions (clip_id, kind);
        CREATE INDEX IF NOT EXISTS regions_label ON regions (label)
        """,
    )


def _v3_stale_models(db: sqlite_utils.Database) -> None:
    """A model is stale once the clips it was fitted on changed (their machine, section, domain, split or
    label): `earmark set` and Clip properties mark it; a newer model of its detector and group replaces it."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(models)").fetchall()}
    if "stale" not in columns:
        db.execute("ALTER TABLE models ADD COLUMN stale INTEGER NOT NULL DEFAULT 0")


def _v4_file_stamps_and_channel(db: sqlite_utils.Database) -> None:
    """Each clip's file size and modification time when last read (a file changed after import is noticed
    and read again), and the channel used of a multi-channel file (NULL: the mono mix). Written to be
    applied whatever its number: a column already there is left as it is."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(clips)").fetchall()}
    for name, kind in (("file_size", "INTEGER"), ("file_mtime", "REAL"), ("channel", "INTEGER")):
        if name not in columns:
            db.execute(f"ALTER TABLE clips ADD COLUMN {name} {kind}")


def _v5_normalised_scores(db: sqlite_utils.Database) -> None:
    """Each score's normalised score (against the model's held-out training-normal scores of the clip's
    domain); NULL for scores written before it was kept. Applied whatever its number, like v4."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(scores)").fetchall()}
    if "normalised" not in columns:
        db.execute("ALTER TABLE scores ADD COLUMN normalised REAL")


def _v6_adjustable_thresholds(db: sqlite_utils.Database) -> None:
    """Thresholds kept in the models table: `threshold` stays the fitted one; `adjusted_threshold` (NULL: not
    adjusted) is what decides, with how it was set (`threshold_set_by` 'value' or 'fpr', the false-positive
    rate asked for, when); `frame_threshold`, until now only in the model's model.json, is copied from there.
    Applied whatever its number, like v4."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(models)").fetchall()}
    for name, kind in (
        ("adjusted_threshold", "REAL"),
        ("threshold_set_by", "TEXT"),
        ("threshold_fpr", "REAL"),
        ("threshold_set_at", "TEXT"),
        ("frame_threshold", "REAL"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE models ADD COLUMN {name} {kind}")
    name = database_name(db)
    if not os.path.isfile(name):  # an in-memory database holds no model files to read
        return
    folder = Path(name).parent
    rows = db.execute("SELECT model_id, artifact FROM models WHERE frame_threshold IS NULL").fetchall()
    for model_id, artifact in rows:
        value = _saved_frame_threshold(folder, artifact)
        if value is not None:
            db.execute("UPDATE models SET frame_threshold = ? WHERE model_id = ?", [value, model_id])


def _saved_frame_threshold(folder: Path, artifact: str | None) -> float | None:
    """The frame threshold a model's model.json records; None when it has none or cannot be read (a model
    whose files are gone is named when it is used, not here). A path leading out of the project is not read."""
    normal = os.path.normpath(artifact) if artifact else ""
    if not normal or normal == "." or os.path.isabs(normal) or normal.split(os.sep)[0] == "..":
        return None
    try:
        value = json.loads((folder / normal / "model.json").read_text()).get("frame_threshold")
        return None if value is None else float(value)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _run_statements(db: sqlite_utils.Database, script: str) -> None:
    # One statement at a time: executescript() would commit the migration's transaction half-way.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_region_ids_never_reused,
    _v3_stale_models,
    _v4_file_stamps_and_channel,
    _v5_normalised_scores,
    _v6_adjustable_thresholds,
]
LATEST_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    if "meta" not in db.table_names():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):  # edited by hand or damaged: say so rather than guess which schema it has
        raise ProjectError(
            f"{database_name(db)} records schema version {row[0]!r} in its meta table, which is not a "
            f"number; nothing was changed. Run `earmark repair` on the project to rebuild the file with this "
            f"Earmark's schema (the old file is kept aside)"
        ) from None


def database_name(db: sqlite_utils.Database) -> str:
    """The file behind a connection, for messages."""
    row = next((r for r in db.execute("PRAGMA database_list").fetchall() if r[1] == "main"), None)
    return row[2] if row and row[2] else "the project's database"


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration newer than the file's version, each in its own transaction."""
    version = schema_version(db)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.atomic():
            step(db)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [str(number)])
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('application', ?)", [APP_ID])
    return schema_version(db)
