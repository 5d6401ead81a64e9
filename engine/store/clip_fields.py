"""Saying what recordings are: choosing clips (ids, globs, `FIELD=VALUE` filters) and changing their machine,
section, domain, split and label in bulk, in one transaction.

The CLI's `earmark set` and the window's Clip properties dock both come here. A model fitted on clips whose
fields changed no longer describes its group: it is marked stale (`models.stale`) until its group is fitted
again (the newer model is not stale). Importing new training clips into a fitted group does the same.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.data.clip import DOMAINS, LABELS, SPLITS, group_key
from engine.errors import EarmarkError
from engine.store.project import Project

#: The names users write (CLI flags, --where, import defaults) and the `clips` columns they change.
FIELDS = {"machine": "machine_type", "section": "section_id", "domain": "domain", "split": "split", "label": "label"}
#: What a value may be, for the fields that have a fixed set; "none" clears the field.
CHOICES = {"domain": DOMAINS, "split": SPLITS, "label": LABELS}
#: Fields `--where` can test besides FIELDS: where a clip came from ("inbox" for dropped files).
WHERE_EXTRA = {"source": "source"}
EMPTY = "none"


@dataclass(frozen=True)
class FieldChange:
    """What one bulk change did: enough to report it and to undo it."""

    matched: int
    #: clip_id -> {column: the value before} of the clips that changed, and just the columns that changed.
    before: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: Models that became stale by this change (they were not before), as (model_id, detector, group).
    stale: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.before)


def normalise_value(name: str, value: str | None) -> str | None:
    """A user's value for field `name` as stored; None clears it. Raises EarmarkError for a bad one."""
    from engine.data.importers.base import normalise_section

    if name not in FIELDS:
        raise EarmarkError(f"unknown field {name!r}; choose one of {', '.join(FIELDS)}")
    text = None if value is None else str(value).strip()
    if not text or text.lower() == EMPTY:
        return None
    if name in CHOICES:
        lowered = text.lower()
        if lowered not in CHOICES[name]:
            raise EarmarkError(f"{name} must be one of {', '.join(CHOICES[name])} or {EMPTY}, not {text!r}")
        return lowered
    if "/" in text or "\\" in text:  # group names are machine/section_XX
        raise EarmarkError(f"{name} {text!r} may not contain a slash")
    return normalise_section(text) if name == "section" else text


def normalise_values(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """{field: value} checked and turned into {column: stored value}."""
    return {FIELDS[name]: normalise_value(name, value) for name, value in values.items()}


def parse_where(items: Iterable[str]) -> dict[str, str | None]:
    """`FIELD=VALUE` filters (machine, section, domain, split, label, source) as {column: value}."""
    where: dict[str, str | None] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise EarmarkError(f"--where {item!r}: write FIELD=VALUE, e.g. --where split=test")
        if name in WHERE_EXTRA:
            where[WHERE_EXTRA[name]] = value.strip() or None
        elif name in FIELDS:
            where[FIELDS[name]] = normalise_value(name, value)
        else:
            raise EarmarkError(
                f"--where {item!r}: unknown field {name!r}; choose one of {', '.join([*FIELDS, *WHERE_EXTRA])}"
            )
    return where


def select_clips(
    project: Project,
    patterns: Sequence[str] = (),
    where: Mapping[str, str | None] | None = None,
) -> list[str]:
    """Clip ids, in import order, matching any of `patterns` (a clip id, or a glob over clip ids or file
    names) and every `where` filter ({column: value}, None matching an empty field). Each pattern must match
    a clip; with no pattern, the filters alone choose (and at least one is needed, so a missing argument
    never changes every clip)."""
    where = dict(where or {})
    if not patterns and not where:
        raise EarmarkError(
            "say which clips: give clip ids or globs (e.g. 'pump_*', or '*' for every clip) or --where FIELD=VALUE"
        )
    condition = " AND ".join(f"{column} IS ?" for column in where) or "1"
    rows = project.db.execute(
        f"SELECT clip_id, path FROM clips WHERE {condition} ORDER BY rowid", list(where.values())
    ).fetchall()
    if not patterns:
        return [clip_id for clip_id, _ in rows]
    chosen: set[str] = set()
    for pattern in patterns:
        found = {
            clip_id
            for clip_id, path in rows
            if clip_id == pattern
            or fnmatch.fnmatchcase(clip_id, pattern)
            or fnmatch.fnmatchcase(os.path.basename(path), pattern)
        }
        if not found:
            scope = " with " + ", ".join(f"{k}={v or EMPTY}" for k, v in where.items()) if where else ""
            raise EarmarkError(
                f"no clip{scope} matches {pattern!r} (clip id, or a glob over clip ids and "
                "file names); nothing was changed"
            )
        chosen |= found
    return [clip_id for clip_id, _ in rows if clip_id in chosen]


def set_fields(project: Project, clip_ids: Sequence[str], values: Mapping[str, str | None]) -> FieldChange:
    """Give every clip in `clip_ids` the same `values` ({field: value}, fields as in FIELDS, "none" or None
    clearing one), in one transaction; models whose training clips changed are marked stale."""
    if not values:
        raise EarmarkError("say what to set: --machine, --section, --domain, --split and/or --label")
    columns = normalise_values(values)
    return _apply(project, {clip_id: columns for clip_id in clip_ids})


def restore_fields(project: Project, change: FieldChange) -> FieldChange:
    """Undo `change`: its clips get their earlier values back, and models it made stale are fresh again
    (models fitted after it, on the changed clips, become stale by the same rule as any change)."""
    return _apply(project, change.before, unmark=[model_id for model_id, _, _ in change.stale])


def clips_added(project: Project, clip_ids: Sequence[str]) -> list[tuple[int, str, str]]:
    """New clips that a fitted group's models would be fitted on (normal training or supplemental clips) make
    those models stale; returns the models marked."""
    db = project.db
    groups: set[str] = set()
    with db.atomic():
        for rows in _field_rows(project, clip_ids):
            groups |= {_group(row) for row in rows if _fitting_view(row) is not None}
        return _mark_stale(project, groups)


def current_fields(project: Project, clip_ids: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """clip_id -> {column: value} of the FIELDS columns (the Clip attributes of the same names)."""
    return {row.pop("clip_id"): row for rows in _field_rows(project, clip_ids) for row in rows}


def _field_rows(project: Project, clip_ids: Sequence[str]):
    """The FIELDS columns of `clip_ids` (with clip_id), a few hundred rows at a time (SQLite's limit on bound
    variables)."""
    ids = list(clip_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield project.db.execute_returning_dicts(
            f"SELECT clip_id, {', '.join(FIELDS.values())} FROM clips WHERE clip_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        )


def _apply(
    project: Project,
    wanted: Mapping[str, Mapping[str, str | None]],
    unmark: Sequence[int] = (),
) -> FieldChange:
    db = project.db
    if not wanted:
        return FieldChange(0)
    ids = list(wanted)
    with db.atomic():
        current = {}
        for rows in _field_rows(project, ids):
            current.update({row.pop("clip_id"): row for row in rows})
        missing = [clip_id for clip_id in ids if clip_id not in current]
        if missing:
            raise EarmarkError(f"no clip {missing[0]!r} in {project.folder} (removed meanwhile?); nothing was changed")
        before: dict[str, dict[str, str | None]] = {}
        touched_groups: set[str] = set()
        for clip_id in ids:
            old = current[clip_id]
            new = {**old, **wanted[clip_id]}
            if new == old:
                continue
            before[clip_id] = {column: old[column] for column in wanted[clip_id] if new[column] != old[column]}
            db.execute(
                f"UPDATE clips SET {', '.join(f'{c} = ?' for c in before[clip_id])} WHERE clip_id = ?",
                [*(new[c] for c in before[clip_id]), clip_id],
            )
            touched_groups |= _groups_touched(old, new)
        stale = _mark_stale(project, touched_groups)
        if unmark:  # after marking: an undo gives these back the clips they were fitted on
            db.execute(f"UPDATE models SET stale = 0 WHERE model_id IN ({', '.join('?' * len(unmark))})", list(unmark))
            stale = [entry for entry in stale if entry[0] not in set(unmark)]
    return FieldChange(len(ids), before, stale)


def used_for_fitting(split: str | None, label: str | None) -> bool:
    """Whether fitting a group reads a clip: its normal training clips (train, not anomaly) and its
    supplemental clips."""
    return (split == "train" and label != "anomaly") or split == "supplemental"


def _fitting_view(row: Mapping[str, str | None]) -> tuple | None:
    """What a detector sees of a clip when fitting its group (split, domain, whether anomalous), or None when
    fitting does not use the clip."""
    used = used_for_fitting(row["split"], row["label"])
    return (row["split"], row["domain"], row["label"] == "anomaly") if used else None


def _group(row: Mapping[str, str | None]) -> str:
    return group_key(row["machine_type"], row["section_id"])


def _groups_touched(old: Mapping[str, str | None], new: Mapping[str, str | None]) -> set[str]:
    """Groups whose fitting clips differ after a clip went from `old` to `new` values."""
    old_group, new_group = _group(old), _group(new)
    old_view, new_view = _fitting_view(old), _fitting_view(new)
    if old_group == new_group and old_view == new_view:
        return set()
    return {g for g, view in ((old_group, old_view), (new_group, new_view)) if view is not None}


def _mark_stale(project: Project, groups: set[str]) -> list[tuple[int, str, str]]:
    """Mark the newest model of each detector in `groups` stale; returns those that were not already."""
    if not groups:
        return []
    marks = ", ".join("?" * len(groups))
    rows = project.db.execute(
        "SELECT model_id, detector, group_key FROM models WHERE stale = 0 AND model_id IN "
        f"(SELECT max(model_id) FROM models WHERE group_key IN ({marks}) GROUP BY detector, group_key) "
        "ORDER BY detector, group_key",
        sorted(groups),
    ).fetchall()
    if rows:
        project.db.execute(
            f"UPDATE models SET stale = 1 WHERE model_id IN ({', '.join('?' * len(rows))})", [row[0] for row in rows]
        )
    return [(int(model_id), detector, group) for model_id, detector, group in rows]


def fitting_snapshots(project: Project) -> dict[str, frozenset]:
    """What fitting each group reads of the project's clips (each fitting clip's id, content checksum, split,
    domain and label), by group: compared before and after a fit, it tells whether the clips changed
    meanwhile."""
    rows = project.db.execute_returning_dicts(
        f"SELECT clip_id, checksum, {', '.join(FIELDS.values())} FROM clips WHERE split IN ('train', 'supplemental')"
    )
    found: dict[str, set] = {}
    for row in rows:
        if (view := _fitting_view(row)) is not None:
            found.setdefault(_group(row), set()).add((row["clip_id"], row["checksum"], view))
    return {group: frozenset(clips) for group, clips in found.items()}


def mark_stale(project: Project, groups: set[str]) -> list[tuple[int, str, str]]:
    """Mark the newest model of each detector of `groups` stale (their fitting clips changed), in one
    transaction; returns the models newly marked."""
    with project.db.atomic():
        return _mark_stale(project, groups)


def stale_models(project: Project) -> list[tuple[int, str, str]]:
    """The newest model of each detector and group that is stale, as (model_id, detector, group)."""
    rows = project.db.execute(
        "SELECT model_id, detector, group_key FROM models WHERE stale = 1 AND model_id IN "
        "(SELECT max(model_id) FROM models GROUP BY detector, group_key) ORDER BY detector, group_key"
    )
    return [(int(model_id), detector, group) for model_id, detector, group in rows]
