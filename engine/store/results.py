"""Fitted models and their scores in a project: the `models` and `scores` tables and their artifacts.

Model weights live in `artifacts/models/<detector>/<group>/<model_id>/`; each scored clip's frame scores
(and anomaly map, where the detector makes one) in `artifacts/scores/<model_id>/<checksum>.npz`. Paths in
the tables are relative to the project folder, so a project can be moved.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine import files
from engine.errors import ArtifactError
from engine.files import disk_full, safe_name
from engine.store.project import Project, now


@dataclass(frozen=True)
class ModelRecord:
    model_id: int
    detector: str
    group_key: str
    config: dict
    artifact: str
    threshold: float
    metrics: dict
    created_at: str
    #: The clips it was fitted on changed since (machine, section, domain, split or label): refit its group.
    stale: bool = False
    #: The threshold on frame scores (proposals, the lane's line); None for a model without one.
    frame_threshold: float | None = None
    #: The threshold a user set in place of the fitted `threshold` (None: not adjusted), how it was set
    #: ("value" or "fpr"), the false-positive rate asked for, and when (`engine.store.thresholds`).
    adjusted_threshold: float | None = None
    threshold_set_by: str | None = None
    threshold_fpr: float | None = None
    threshold_set_at: str | None = None

    @property
    def warning(self) -> str | None:
        """What the user should know about how it was fitted (few normal clips), as a sentence; or None."""
        said = self.metrics.get("warning")
        return f"{self.detector} for {self.group_key} was {said}" if said else None


@dataclass(frozen=True)
class ScoreRow:
    """A stored score with the clip's truth, for evaluation and export."""

    model_id: int
    detector: str
    clip_id: str
    path: str
    machine_type: str | None
    section_id: str | None
    domain: str | None
    split: str | None
    label: str | None
    score: float
    decision: bool
    map_artifact: str | None
    #: Against the model's held-out training-normal scores of the clip's domain; None for older scores.
    normalised: float | None = None


#: The group of a model trained for the whole project (the supervised classifiers): it scores every group.
ALL_GROUPS = "all"


def add_model(
    project: Project,
    detector: str,
    group_key: str,
    config: dict,
    threshold: float,
    metrics: dict | None = None,
    write: Callable[[Path], object] | None = None,
    frame_threshold: float | None = None,
) -> tuple[int, Path]:
    """Record a model whose files `write(folder)` puts into the folder it is given; returns its id and folder.

    The files are written into a temporary folder first; the row is inserted, and the folder renamed to the
    model's, in one transaction after they are complete: a kill or a full disk leaves no row pointing at
    missing or half-written weights (a temporary folder left by a kill is removed when the project opens)."""
    parent = project.artifacts / "models" / detector / safe_name(group_key)
    temporary = parent / f".model.{uuid.uuid4().hex[:8]}.part"
    folder = None
    try:
        with stop_when_full(project):
            temporary.mkdir(parents=True)
            if write is not None:
                write(temporary)
            db = project.db
            with db.atomic():
                cursor = db.execute(
                    "INSERT INTO models (detector, group_key, config, artifact, threshold, metrics, created_at, "
                    "frame_threshold) VALUES (?, ?, ?, '', ?, ?, ?, ?)",
                    [
                        detector,
                        group_key,
                        json.dumps(config, sort_keys=True),
                        threshold,
                        json.dumps(metrics or {}),
                        now(),
                        frame_threshold,
                    ],
                )
                model_id = int(cursor.lastrowid)
                relative = Path("artifacts") / "models" / detector / safe_name(group_key) / str(model_id)
                db.execute("UPDATE models SET artifact = ? WHERE model_id = ?", [relative.as_posix(), model_id])
                folder = project.folder / relative
                if folder.exists():  # left by a kill between this rename and its commit: no row refers to it
                    shutil.rmtree(folder)
                os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        if (
            folder is not None
            and not project.db.execute(
                "SELECT 1 FROM models WHERE artifact = ?", [folder.relative_to(project.folder).as_posix()]
            ).fetchone()
        ):
            shutil.rmtree(folder, ignore_errors=True)  # renamed, but the row was not committed
        raise
    return model_id, folder


@contextmanager
def stop_when_full(project: Project) -> Iterator[None]:
    """Turn a write that failed for a full disk (SQLite's or a file's) into the one `DiskFullError`."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        raise disk_full(exc, project.folder) or exc from None


def artifact_path(project: Project, relative: str, remedy: str = "score the clips again") -> Path:
    """Where an artifact recorded in the project (a path relative to its folder) is; one that would lie
    outside the project folder (`../`, an absolute path) is refused with `ArtifactError`. Checked on the path
    as written, not on links: an `artifacts` folder linked to another disk stays usable."""
    normal = os.path.normpath(relative) if relative else ""
    if not normal or normal == "." or os.path.isabs(normal) or normal.split(os.sep)[0] == "..":
        raise ArtifactError(
            f"the project {project.folder} records a file at {relative!r}, outside the project "
            f"folder; it is not followed: {remedy}"
        )
    return project.folder / normal


def remove_artifact(project: Project, relative: str | None) -> None:
    """Delete a stored file the project no longer refers to; one recorded outside the project is left alone."""
    try:
        path = artifact_path(project, relative) if relative else None
    except ArtifactError:
        return
    if path is not None:
        path.unlink(missing_ok=True)


def model_folder(project: Project, record: ModelRecord) -> Path:
    """The folder of a model's files, inside the project (else `ArtifactError`, saying to refit)."""
    return artifact_path(project, record.artifact, f"fit {record.detector} for {record.group_key} again")


def remove_leftovers(project: Project) -> list[Path]:
    """Temporary files and model folders left under `artifacts/` by a killed process, removed (see
    `engine.files.remove_leftovers`)."""
    return files.remove_leftovers(project.artifacts)


def models(project: Project, detector: str | None = None) -> list[ModelRecord]:
    where, values = ("WHERE detector = ?", [detector]) if detector else ("", [])
    rows = project.db.execute_returning_dicts(f"SELECT * FROM models {where} ORDER BY model_id", values)
    return [
        ModelRecord(
            r["model_id"],
            r["detector"],
            r["group_key"],
            json.loads(r["config"]),
            r["artifact"],
            r["threshold"],
            json.loads(r["metrics"]),
            r["created_at"],
            bool(r.get("stale")),
            r.get("frame_threshold"),
            r.get("adjusted_threshold"),
            r.get("threshold_set_by"),
            r.get("threshold_fpr"),
            r.get("threshold_set_at"),
        )
        for r in rows
    ]


def model(project: Project, model_id: int) -> ModelRecord | None:
    """The record of one model, or None when there is no such model."""
    rows = project.db.execute("SELECT detector FROM models WHERE model_id = ?", [model_id]).fetchone()
    if rows is None:
        return None
    return next((m for m in models(project, rows[0]) if m.model_id == model_id), None)


def latest_models(project: Project, detector: str) -> dict[str, ModelRecord]:
    """The newest model of `detector` for each group (ALL_GROUPS for a model of the whole project)."""
    return {m.group_key: m for m in models(project, detector)}


def model_for_group(latest: dict[str, ModelRecord], group: str) -> ModelRecord | None:
    """The model that scores `group`: the group's own, else one trained for the whole project."""
    return latest.get(group) or latest.get(ALL_GROUPS)


def fitted_detectors(project: Project) -> list[str]:
    return [row[0] for row in project.db.execute("SELECT DISTINCT detector FROM models ORDER BY detector")]


def score_file(project: Project, model_id: int, checksum: str) -> Path:
    return project.artifacts / "scores" / str(model_id) / f"{checksum}.npz"


def write_scores(project: Project, model_id: int, rows: Sequence[tuple]) -> None:
    """Store (clip_id, score, decision, map_artifact, normalised) rows, replacing earlier scores of this
    model; a row without a normalised score (or a NaN one) stores NULL."""
    stamp = now()
    db = project.db
    with stop_when_full(project), db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO scores (model_id, clip_id, score, decision, map_artifact, normalised, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    model_id,
                    row[0],
                    float(row[1]),
                    int(row[2]),
                    row[3],
                    _finite_or_none(row[4] if len(row) > 4 else None),
                    stamp,
                )
                for row in rows
            ],
        )


def _finite_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def save_lanes(project: Project, model_id: int, checksum: str, arrays: dict[str, np.ndarray]) -> str:
    """Write one clip's frame scores (and map) for a model, atomically; returns the path relative to the
    project."""
    target = score_file(project, model_id, checksum)
    # Renamed whole (a kill leaves the old file or the new one) but not fsynced: one per clip and model while
    # scoring, and a lanes file a power cut damaged is named by load_lanes and written again by a rescore.
    files.save_npz_atomic(target, arrays, durable=False)
    return target.relative_to(project.folder).as_posix()


def load_lanes(project: Project, map_artifact: str) -> dict[str, np.ndarray]:
    """A clip's stored frame scores (and map). A missing, truncated or unreadable file raises `ArtifactError`
    naming it: the caller shows the score without them and goes on; scoring the clip again writes them."""
    path = artifact_path(project, map_artifact)
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        state = "missing" if not path.exists() else f"damaged ({type(exc).__name__}: {exc})"
        raise ArtifactError(f"the frame scores in {path} are {state}; score the clips again to rewrite them") from None


@dataclass(frozen=True)
class ClipScore:
    """A clip's newest score from one detector, with where its lanes are."""

    model_id: int
    score: float
    decision: bool
    map_artifact: str | None
    normalised: float | None = None


def clip_scores(project: Project, clip_id: str | None = None) -> dict[str, dict[str, ClipScore]]:
    """clip_id -> detector -> the score of the newest model of that detector that scored the clip."""
    where, values = ("WHERE s.clip_id = ?", [clip_id]) if clip_id else ("", [])
    rows = project.db.execute(
        "SELECT s.clip_id, m.detector, s.model_id, s.score, s.decision, s.map_artifact, s.normalised FROM scores s "
        f"JOIN models m ON m.model_id = s.model_id {where} ORDER BY s.model_id",
        values,
    ).fetchall()
    found: dict[str, dict[str, ClipScore]] = {}
    for clip, detector, model_id, score, decision, artifact, normalised in rows:  # newer models overwrite older
        found.setdefault(clip, {})[detector] = ClipScore(model_id, score, bool(decision), artifact, normalised)
    return found


def frame_threshold(project: Project, record: ModelRecord) -> float | None:
    """The model's threshold on frame scores, from the models table; or None when it has none. A model the
    table has none for (a project rebuilt by `earmark repair` from a file older than the column) falls back
    to its model.json, read once: a saved model never changes."""
    if record.frame_threshold is not None:
        return float(record.frame_threshold)
    try:
        return _frame_threshold(str(model_folder(project, record) / "model.json"))
    except ArtifactError:
        return None


@lru_cache(maxsize=1024)
def _frame_threshold(path: str) -> float | None:
    try:
        value = json.loads(Path(path).read_text()).get("frame_threshold")
    except (OSError, ValueError):
        return None
    return None if value is None else float(value)


def latest_scores(project: Project, detector: str | None = None, split: str | None = None) -> list[ScoreRow]:
    """For each detector, the scores of its newest model per group, with each clip's truth."""
    where, values = [], []
    if detector:
        where.append("m.detector = ?")
        values.append(detector)
    if split:
        where.append("c.split = ?")
        values.append(split)
    condition = " AND ".join(where) or "1"
    rows = project.db.execute(
        "SELECT s.model_id, m.detector, c.clip_id, c.path, c.machine_type, c.section_id, c.domain, c.split, "
        "c.label, s.score, s.decision, s.map_artifact, s.normalised FROM scores s "
        "JOIN models m ON m.model_id = s.model_id JOIN clips c ON c.clip_id = s.clip_id "
        "WHERE s.model_id IN (SELECT max(model_id) FROM models GROUP BY detector, group_key) "
        f"AND {condition} ORDER BY m.detector, c.machine_type, c.section_id, c.rowid",
        values,
    ).fetchall()
    return [ScoreRow(*row[:10], bool(row[10]), row[11], row[12]) for row in rows]
