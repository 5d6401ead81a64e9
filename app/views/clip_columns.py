"""What the clip table holds, column-wise: one record (a tuple) per clip and one array per score column,
read in one query each. A `ClipRow` (with its `Clip`) is built only when a caller asks for that row, and
sorting and filtering work on numpy arrays derived from a column on first use (see `ClipFilter`): a
project of 100 000 clips opens, sorts and filters without a Python object or a Python call per clip and
cell.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from engine.data.clip import Clip
from engine.data.qa_flags import qa_code_text, qa_flag_codes, qa_text
from engine.detectors import drops
from engine.store import Project, results
from engine.store.clip_records import (
    AT,
    ScoreColumn,
    clip_from_record,
    clip_qa,
    clip_records,
    record_of,
    score_columns,
)
from engine.store.results import ClipScore

#: The table's metadata columns, then one per detector, then the decision of the detector being viewed.
FIXED = ("name", "machine", "section", "domain", "split", "label", "QA", "duration")
NUMERIC = ("duration",)
#: Text that can appear in a number's cell: a filter made only of these also searches the number columns.
NUMBER_CHARACTERS = frozenset("0123456789.-+e infas")


@dataclass
class ClipRow:
    clip: Clip
    source: str
    scores: dict[str, ClipScore] = field(default_factory=dict)
    name: str = ""
    #: detector -> what to know about the model that scored this clip (fitted on few normals, say)
    warnings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or os.path.basename(self.clip.path)


class ClipFields(NamedTuple):
    """A clip's metadata fields without the rest of its `Clip` (quick to make for 100 000 selected rows)."""

    clip_id: str
    machine_type: str | None
    section_id: str | None
    domain: str | None
    split: str | None
    label: str | None


@dataclass(frozen=True)
class Column:
    """What one table column shows: a FIXED name, ("score", detector, normalised) or ("decision", detector)."""

    kind: str
    detector: str | None = None
    normalised: bool = False


class ClipColumns(Sequence):
    """Every clip of the table in import order: `records` (see `engine.store.clip_records.FIELDS`), the
    score columns by detector, and the warnings of the models that scored them (model id -> text). As a
    sequence, its `ClipRow`s, each built when asked for."""

    def __init__(
        self,
        records: list[tuple],
        scores: dict[str, ScoreColumn],
        warnings: Mapping[int, str] | None = None,
        positions: dict[str, int] | None = None,
    ) -> None:
        self.records = records
        self.scores = scores
        self.warnings = dict(warnings or {})
        #: clip_id -> its row
        self.positions = positions if positions is not None else {record[0]: i for i, record in enumerate(records)}
        self._derived: dict[object, object] = {}

    @classmethod
    def read(cls, project: Project, clip_ids: Sequence[str] | None = None) -> ClipColumns:
        records = clip_records(project, clip_ids)
        positions = {record[0]: i for i, record in enumerate(records)}
        scores = score_columns(project, positions, len(records), clip_ids)
        warnings = {m.model_id: m.warning for m in results.models(project) if m.warning}
        return cls(records, scores, warnings, positions)

    @classmethod
    def from_rows(cls, rows: Sequence[ClipRow]) -> ClipColumns:
        records = [record_of(row.clip, row.source) for row in rows]
        scores: dict[str, ScoreColumn] = {}
        warnings: dict[int, str] = {}
        for i, row in enumerate(rows):
            for detector, found in row.scores.items():
                column = scores.setdefault(detector, ScoreColumn.empty(len(rows)))
                column.model_id[i], column.score[i] = found.model_id, found.score
                column.decision[i] = int(found.decision)
                column.normalised[i] = np.nan if found.normalised is None else found.normalised
                if detector in row.warnings:
                    warnings[found.model_id] = row.warnings[detector]
        return cls(records, scores, warnings)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.row(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.row(i)

    def __iter__(self) -> Iterator[ClipRow]:
        return (self.row(i) for i in range(len(self)))

    @property
    def detectors(self) -> list[str]:
        return sorted(self.scores)

    # -- one row ------------------------------------------------------------------------------------------
    def row(self, i: int) -> ClipRow:
        record = self.records[i]
        scores, warnings = {}, {}
        for detector, column in self.scores.items():
            model_id = int(column.model_id[i])
            if model_id < 0:
                continue
            normalised = float(column.normalised[i])
            scores[detector] = ClipScore(
                model_id,
                float(column.score[i]),
                bool(column.decision[i]),
                None,
                None if normalised != normalised else normalised,
            )
            if model_id in self.warnings:
                warnings[detector] = self.warnings[model_id]
        return ClipRow(clip_from_record(record), record[AT["source"]], scores, warnings=warnings)

    def fields(self, i: int) -> ClipFields:
        record = self.records[i]
        return ClipFields(record[0], *record[4:9])

    def name(self, i: int) -> str:
        return os.path.basename(self.records[i][1])

    def names(self) -> list[str]:
        return self._cached("names", lambda: [os.path.basename(r[1]) for r in self.records])

    def model_id(self, i: int, detector: str | None) -> int | None:
        column = self.scores.get(detector) if detector else None
        return None if column is None or column.model_id[i] < 0 else int(column.model_id[i])

    def value(self, i: int, column: Column):
        """The cell's value: text, a number, or None for an empty cell."""
        record = self.records[i]
        kind = column.kind
        if kind == "name":
            return self.name(i)
        if kind in ("machine", "section"):
            return _shown_group(record)[0 if kind == "machine" else 1]
        if kind in ("domain", "split", "label"):
            return record[AT[kind]]
        if kind == "QA":  # one cell: from its own figures (the whole column is derived only to sort or filter)
            return qa_text(record[AT["duration_s"]], clip_qa(record))
        if kind == "duration":
            return record[AT["duration_s"]]
        found = self.scores.get(column.detector) if column.detector else None
        if found is None or found.model_id[i] < 0:
            return None
        if kind == "score":
            value = float((found.normalised if column.normalised else found.score)[i])
            return None if value != value else value
        if _shown_group(record)[2]:
            return drops.UNLIKE_TEXT
        return "anomaly" if found.decision[i] else "normal"

    # -- changing -----------------------------------------------------------------------------------------
    def upsert(self, other: ClipColumns) -> list[int]:
        """Take `other`'s rows: replace the rows of clips held, append the others; returns their positions."""
        at = []
        for record in other.records:
            position = self.positions.get(record[0])
            if position is None:
                position = self.positions[record[0]] = len(self.records)
                self.records.append(record)
            else:
                self.records[position] = record
            at.append(position)
        size, where = len(self.records), np.asarray(at, np.int64)
        for detector in set(self.scores) | set(other.scores):
            column = self.scores.setdefault(detector, ScoreColumn.empty(size))
            if len(column.model_id) < size:
                grown = ScoreColumn.empty(size)
                for name in ("model_id", "score", "normalised", "decision"):
                    getattr(grown, name)[: len(column.model_id)] = getattr(column, name)
                column = self.scores[detector] = grown
            new = other.scores.get(detector) or ScoreColumn.empty(len(other))
            for name in ("model_id", "score", "normalised", "decision"):
                getattr(column, name)[where] = getattr(new, name)
        self.warnings.update(other.warnings)
        self._derived.clear()
        return at

    # -- whole columns, for sorting and filtering (derived on first use, kept until a row changes) ---------
    def _cached(self, key: object, make: Callable[[], object]):
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def _qa_codes(self) -> np.ndarray:
        def make() -> np.ndarray:
            figures = np.array(
                [
                    [r[AT["duration_s"]], r[AT["qa_rms"]], r[AT["qa_clipping_ratio"]], r[AT["qa_silence_ratio"]]]
                    for r in self.records
                ],
                dtype=np.float64,
            ).reshape(-1, 4)
            return qa_flag_codes(*figures.T)

        return self._cached("qa codes", make)

    def texts(self, column: Column) -> tuple[np.ndarray, np.ndarray]:
        """(distinct cell texts in sorted order, each row's index into them) of a text column."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            if column.kind == "QA":
                codes = self._qa_codes()
                shown = np.array([qa_code_text(code) for code in range(8)], dtype=object)
                order = np.argsort(shown, kind="stable")
                rank = np.empty(8, np.int64)
                rank[order] = np.arange(8)
                return shown[order], rank[codes]
            if column.kind in ("machine", "section"):
                shown = [r[AT["machine_type" if column.kind == "machine" else "section_id"]] for r in self.records]
                for i in self._without_group():
                    shown[i] = _shown_group(self.records[i])[0 if column.kind == "machine" else 1]
            elif column.kind == "name":
                shown = self.names()
            elif column.kind == "decision":
                shown = self._decision_texts(column.detector)
            else:
                shown = [r[AT[column.kind]] for r in self.records]
            # Codes in order of appearance (a dict: far quicker than sorting every row's text), then ranks.
            lookup: dict[str, int] = {}
            codes = np.fromiter((lookup.setdefault(value or "", len(lookup)) for value in shown), np.int64, len(shown))
            distinct = sorted(lookup)
            rank = np.empty(len(distinct), np.int64)
            rank[[lookup[value] for value in distinct]] = np.arange(len(distinct))
            return np.array(distinct, dtype=object), rank[codes]

        return self._cached(("texts", column), make)

    def _decision_texts(self, detector: str | None) -> list[str]:
        found = self.scores.get(detector) if detector else None
        if found is None:
            return [""] * len(self.records)
        shown = np.array(["", "normal", "anomaly"], dtype=object)[np.where(found.model_id < 0, 0, found.decision + 1)]
        for i in self._without_group():
            if shown[i] and _shown_group(self.records[i])[2]:
                shown[i] = drops.UNLIKE_TEXT
        return list(shown)

    def _without_group(self) -> list[int]:
        """Rows without a machine or section: a drop may show the group it was guessed to be."""
        return self._cached(
            "without group",
            lambda: [
                i for i, r in enumerate(self.records) if r[AT["machine_type"]] is None or r[AT["section_id"]] is None
            ],
        )

    def warm(self, columns: Sequence[Column]) -> Iterator[None]:
        """Derive what the first sort or filter by each of `columns` (and the tree's fields) would, one
        column per step: the window runs a step at a time while idle, so a user's first filter is quick."""
        for column in columns:
            if column.kind in NUMERIC or column.kind == "score":
                self.matches(column, "0")
            else:
                self.texts(column)
            yield
        for name in ("machine_type", "section_id", "domain", "split", "inbox"):
            self.equals(name, None)
            yield

    def numbers(self, column: Column) -> np.ndarray:
        """A number column's values, NaN where the cell is empty."""
        if column.kind == "duration":
            return self._cached(
                "durations", lambda: np.fromiter((r[AT["duration_s"]] for r in self.records), np.float64, len(self))
            )
        found = self.scores.get(column.detector)
        if found is None:
            return np.full(len(self), np.nan)
        return found.normalised if column.normalised else found.score

    def sort_key(self, column: Column) -> np.ndarray:
        """Each row's key: numbers as numbers with an empty cell lowest, text by its sorted position."""
        if column.kind in NUMERIC or column.kind == "score":
            values = self.numbers(column)
            return np.where(np.isnan(values), -np.inf, values)
        return self.texts(column)[1]

    def matches(self, column: Column, text: str) -> np.ndarray | None:
        """Rows whose cell shows `text` (lower case), or None where this column cannot (a number column
        searched for a word)."""
        if column.kind in NUMERIC or column.kind == "score":
            if not set(text) <= NUMBER_CHARACTERS:
                return None
            shown = self._cached(("number texts", column), lambda: _number_texts(column, self.numbers(column)))
            return np.fromiter((text in cell for cell in shown), bool, len(shown))
        if column.kind == "QA" and not any(text in qa_code_text(code) for code in range(8)):
            return np.zeros(len(self), bool)  # no QA cell can show it: the column need not be derived
        distinct, inverse = self.texts(column)
        hits = np.fromiter((text in value.lower() for value in distinct), bool, len(distinct))
        return hits[inverse] if len(inverse) else np.zeros(0, bool)

    def equals(self, field_name: str, wanted: object) -> np.ndarray:
        """Rows whose stored `field_name` (a clip field, or "inbox": dropped on the window) equals `wanted`."""
        if field_name == "inbox":
            values = self._cached("sources", lambda: np.array([r[AT["source"]] for r in self.records], dtype=object))
            return (values == "inbox") == bool(wanted)
        values = self._cached(
            ("field", field_name), lambda: np.array([r[AT[field_name]] for r in self.records], dtype=object)
        )
        return np.fromiter((value == wanted for value in values), bool, len(values))

    def summary(self) -> list[dict]:
        """Clip counts and durations by machine, section, domain, split and label, ordered as
        `Project.summary()` gives them (empty fields first), from the rows held: no second read."""
        groups: dict[tuple, list] = {}
        for r in self.records:
            key = r[4:9]
            found = groups.get(key)
            if found is None:
                groups[key] = [1, r[3]]
            else:
                found[0] += 1
                found[1] += r[3]
        fields = ("machine_type", "section_id", "domain", "split", "label")
        return [
            {**dict(zip(fields, key, strict=True)), "clips": count, "duration_s": duration}
            for key, (count, duration) in sorted(
                groups.items(), key=lambda item: [(value is not None, value or "") for value in item[0]]
            )
        ]

    def count_source(self, source: str) -> int:
        return (
            int(self.equals("inbox", True).sum()) if source == "inbox" else sum(r[-1] == source for r in self.records)
        )

    def chosen(self, clip_ids: Collection[str]) -> np.ndarray:
        mask = np.zeros(len(self), bool)
        at = [self.positions[c] for c in clip_ids if c in self.positions]
        mask[at] = True
        return mask


def _shown_group(record: Sequence) -> tuple[str | None, str | None, bool]:
    """(machine, section) as the table shows them, and whether the clip is unlike every trained group: a
    drop with no group of its own shows the group whose models scored it, said to be a guess."""
    machine, section = record[AT["machine_type"]], record[AT["section_id"]]
    if machine is not None and section is not None:
        return machine, section, False
    attributes = record[AT["attributes"]] or "{}"
    if drops.GUESSED_GROUP not in attributes:
        return machine, section, False
    parsed = json.loads(attributes)
    guessed = parsed.get(drops.GUESSED_GROUP)
    if not guessed:
        return machine, section, False
    machine, section = (
        own if own is not None else f"{part} (guessed)" if part else None
        for own, part in zip((machine, section), drops.group_fields(guessed), strict=False)
    )
    return machine, section, bool(parsed.get(drops.UNLIKE))


def number_text(value: float | None, kind: str) -> str:
    """A number's cell."""
    if value is None:
        return ""
    return f"{value:.1f} s" if kind == "duration" else f"{value:.4g}"


def _number_texts(column: Column, values: np.ndarray) -> list[str]:
    return [("" if value != value else number_text(value, column.kind)).lower() for value in values.tolist()]
