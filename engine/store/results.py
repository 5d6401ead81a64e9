"""Fitted models and their scores in a project: the `models` and `scores` tables and their artifacts.

Model weights live in `artifacts/models/<detector>/<group>/<model_id>/`; each scored clip's frame scores
(and anomaly map, where the detector makes one) in `artifacts/scores/<model_id>/<checksum>.npz`. Paths in
the tables are relative to the project folder, so a project can be moved.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

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


def safe_name(text: str) -> str:
    """Text made safe as a file or folder name."""
    return re.sub(r"[^A-Za-z0-9_.~-]+", "_", text)


def add_model(project: Project, detector: str, group_key: str, config: dict, threshold: float,
              metrics: dict | None = None) -> tuple[int, Path]:
    """Record a model; returns its id and the (empty) folder its weights go into."""
    db = project.db
    with db.atomic():
        cursor = db.execute(
            "INSERT INTO models (detector, group_key, config, artifact, threshold, metrics, created_at) "
            "VALUES (?, ?, ?, '', ?, ?, ?)",
            [detector, group_key, json.dumps(config, sort_keys=True), threshold, json.dumps(metrics or {}), now()])
        model_id = int(cursor.lastrowid)
        relative = Path("artifacts") / "models" / detector / safe_name(group_key) / str(model_id)
        db.execute("UPDATE models SET artifact = ? WHERE model_id = ?", [relative.as_posix(), model_id])
    folder = project.folder / relative
    folder.mkdir(parents=True, exist_ok=True)
    return model_id, folder


def remove_model(project: Project, model_id: int) -> None:
    with project.db.atomic():
        project.db.execute("DELETE FROM models WHERE model_id = ?", [model_id])


def models(project: Project, detector: str | None = None) -> list[ModelRecord]:
    where, values = ("WHERE detector = ?", [detector]) if detector else ("", [])
    rows = project.db.execute_returning_dicts(f"SELECT * FROM models {where} ORDER BY model_id", values)
    return [ModelRecord(r["model_id"], r["detector"], r["group_key"], json.loads(r["config"]), r["artifact"],
                        r["threshold"], json.loads(r["metrics"]), r["created_at"], bool(r.get("stale")))
            for r in rows]


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
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO scores (model_id, clip_id, score, decision, map_artifact, normalised, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(model_id, row[0], float(row[1]), int(row[2]), row[3], _finite_or_none(row[4] if len(row) > 4 else None),
              stamp) for row in rows])


def _finite_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def save_lanes(project: Project, model_id: int, checksum: str, arrays: dict[str, np.ndarray]) -> str:
    """Write one clip's frame scores (and map) for a model; returns the path relative to the project."""
    target = score_file(project, model_id, checksum)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **arrays)
    return target.relative_to(project.folder).as_posix()


def load_lanes(project: Project, map_artifact: str) -> dict[str, np.ndarray]:
    with np.load(project.folder / map_artifact) as data:
        return {name: data[name] for name in data.files}


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
        f"JOIN models m ON m.model_id = s.model_id {where} ORDER BY s.model_id", values).fetchall()
    found: dict[str, dict[str, ClipScore]] = {}
    for clip, detector, model_id, score, decision, artifact, normalised in rows:  # newer models overwrite older
        found.setdefault(clip, {})[detector] = ClipScore(model_id, score, bool(decision), artifact, normalised)
    return found


def frame_threshold(project: Project, record: ModelRecord) -> float | None:
    """The model's threshold on frame scores (stored with its weights), or None when it has none. A saved
    model never changes, so each is read once (the window asks on every clip it shows)."""
    return _frame_threshold(str(project.folder / record.artifact / "model.json"))


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
        f"AND {condition} ORDER BY m.detector, c.machine_type, c.section_id, c.rowid", values).fetchall()
    return [ScoreRow(*row[:10], bool(row[10]), row[11], row[12]) for row in rows]
