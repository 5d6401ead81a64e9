"""The clips table and the newest scores read column-wise, for a view of every clip at once (the window's
clip table): one query each, plain tuples and numpy arrays, no `Clip` object per row. A project of 100 000
clips is read in well under a second this way; `Project.clips()` builds and validates a `Clip` per row
and takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.audio.io import QA
from engine.data.clip import Clip
from engine.store.project import Project

#: The fields of a clip record, in order (`clip_from_record` turns one into a `Clip`).
FIELDS = (
    "clip_id",
    "path",
    "sample_rate",
    "duration_s",
    "machine_type",
    "section_id",
    "domain",
    "split",
    "label",
    "attributes",
    "qa_rms",
    "qa_peak",
    "qa_clipping_ratio",
    "qa_silence_ratio",
    "checksum",
    "channels",
    "format",
    "channel",
    "file_size",
    "file_mtime",
    "source",
)
AT = {name: i for i, name in enumerate(FIELDS)}
_SELECT = ", ".join(f"coalesce({f}, '')" if f == "source" else f for f in FIELDS)
#: Under SQLite's limit on the parameters of one statement.
_CHUNK = 500


def clip_records(project: Project, clip_ids: Sequence[str] | None = None) -> list[tuple]:
    """Every clip (or these) as a tuple of `FIELDS`, in import order; attributes stay JSON text."""
    if clip_ids is None:
        return project.db.execute(f"SELECT {_SELECT} FROM clips ORDER BY rowid").fetchall()
    found: list[tuple] = []
    for start in range(0, len(clip_ids), _CHUNK):
        chunk = list(clip_ids[start : start + _CHUNK])
        found += project.db.execute(
            f"SELECT {_SELECT} FROM clips WHERE clip_id IN ({', '.join('?' for _ in chunk)}) ORDER BY rowid", chunk
        ).fetchall()
    return found


def clip_qa(record: Sequence) -> QA | None:
    """The QA figures of a record, None where they were not measured."""
    return None if record[AT["qa_rms"]] is None else QA(*(record[AT[f]] for f in FIELDS[10:14]))


def clip_from_record(record: Sequence) -> Clip:
    """The `Clip` of a record (without its ground-truth regions, which the record does not carry)."""
    r = record
    qa = clip_qa(r)
    return Clip(
        clip_id=r[0],
        path=r[1],
        sample_rate=r[2],
        duration_s=r[3],
        machine_type=r[4],
        section_id=r[5],
        domain=r[6],
        split=r[7],
        label=r[8],
        attributes=json.loads(r[9] or "{}"),
        qa=qa,
        checksum=r[AT["checksum"]],
        channels=r[AT["channels"]] or 1,
        format=r[AT["format"]] or "",
        channel=r[AT["channel"]],
        file_size=r[AT["file_size"]],
        file_mtime=r[AT["file_mtime"]],
    )


def record_of(clip: Clip, source: str) -> tuple:
    """The record of a `Clip` (the inverse of `clip_from_record`, with where it came from)."""
    qa = clip.qa
    return (
        clip.clip_id,
        clip.path,
        clip.sample_rate,
        clip.duration_s,
        clip.machine_type,
        clip.section_id,
        clip.domain,
        clip.split,
        clip.label,
        json.dumps(dict(clip.attributes), sort_keys=True),
        *((qa.rms, qa.peak, qa.clipping_ratio, qa.silence_ratio) if qa is not None else (None,) * 4),
        clip.checksum,
        clip.channels,
        clip.format,
        clip.channel,
        clip.file_size,
        clip.file_mtime,
        source,
    )


@dataclass
class ScoreColumn:
    """One detector's newest score of each clip, by the clip's position: -1 / NaN where it has none."""

    model_id: np.ndarray  # int64
    score: np.ndarray  # float64
    normalised: np.ndarray  # float64
    decision: np.ndarray  # int8: -1 none, 0 normal, 1 anomaly

    @classmethod
    def empty(cls, size: int) -> ScoreColumn:
        return cls(
            np.full(size, -1, np.int64), np.full(size, np.nan), np.full(size, np.nan), np.full(size, -1, np.int8)
        )

    def take(self, positions: np.ndarray) -> ScoreColumn:
        return ScoreColumn(*(a[positions] for a in (self.model_id, self.score, self.normalised, self.decision)))


def score_columns(
    project: Project, positions: dict[str, int], size: int, clip_ids: Sequence[str] | None = None
) -> dict[str, ScoreColumn]:
    """detector -> the score of the newest model of that detector that scored each clip (as
    `results.clip_scores`), placed at `positions[clip_id]`; clips not in `positions` are left out."""
    query = "SELECT clip_id, model_id, score, decision, normalised FROM scores {where} ORDER BY model_id"
    if clip_ids is None:
        rows = project.db.execute(query.format(where="")).fetchall()
    else:
        rows = []
        for start in range(0, len(clip_ids), _CHUNK):
            chunk = list(clip_ids[start : start + _CHUNK])
            rows += project.db.execute(
                query.format(where=f"WHERE clip_id IN ({', '.join('?' for _ in chunk)})"), chunk
            ).fetchall()
        rows.sort(key=lambda row: row[1])
    if not rows:
        return {}
    where = np.fromiter((positions.get(row[0], -1) for row in rows), np.int64, len(rows))
    # One array of the numbers (a missing normalised score becomes NaN): far quicker than a column at a time.
    numbers = np.array([row[1:] for row in rows], dtype=np.float64).reshape(len(rows), 4)
    model_ids = numbers[:, 0].astype(np.int64)
    detector_of = dict(project.db.execute("SELECT model_id, detector FROM models").fetchall())
    columns: dict[str, ScoreColumn] = {}
    for detector in sorted(set(detector_of.values())):
        mine = np.isin(model_ids, [m for m, d in detector_of.items() if d == detector]) & (where >= 0)
        found = np.flatnonzero(mine)  # in model order: rows come sorted by model id
        if not len(found):
            continue
        at = where[found]
        # The newest model's row of each clip: the last of its rows.
        last = found[len(at) - 1 - np.unique(at[::-1], return_index=True)[1]]
        column = ScoreColumn.empty(size)
        at = where[last]
        column.model_id[at] = model_ids[last]
        column.score[at] = numbers[last, 1]
        column.decision[at] = numbers[last, 2].astype(np.int8)
        column.normalised[at] = numbers[last, 3]
        columns[detector] = column
    return columns
