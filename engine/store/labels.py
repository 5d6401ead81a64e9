"""Labelled regions and label classes: every edit the labelling flow makes, each one transaction.

A region is a stretch of one clip (optionally a time-frequency box: `low_hz`/`high_hz`) with a label and a
kind: `truth` (anomaly regions that came with the data set), `manual` (drawn, imported or accepted by the
user) or `proposal` (suggested from a detector's frame scores, with that model and a confidence). Each
function here commits before it returns, so a process killed right after an edit keeps the edit; the
GUI's undo stack calls these same functions to undo and redo.

Label classes give a label its colour and its shortcut key: the first nine classes, in their order, are
keys 1-9.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from engine.errors import EarmarkError
from engine.store.project import LabelClass, Project, now

KINDS = ("truth", "manual", "proposal")
#: Colours given to classes added without one (imports naming new labels), in turn: none red or orange, the
#: ground truth's colour on the spectrogram.
PALETTE = (
    "#f032e6",
    "#3cb44b",
    "#4363d8",
    "#469990",
    "#911eb4",
    "#42d4f4",
    "#bfef45",
    "#000075",
    "#808000",
    "#dcbeff",
    "#a9a9a9",
    "#aaffc3",
    "#fabed4",
    "#e6beff",
)
#: Proposal pieces shorter than this, left over beside a label, are not worth a look.
MIN_PIECE_S = 0.05
EDITABLE = ("start_s", "end_s", "low_hz", "high_hz", "label", "kind", "model_id", "confidence")


class LabelError(EarmarkError):
    """A region or label class that cannot be written as asked."""


@dataclass(frozen=True)
class Region:
    clip_id: str
    start_s: float
    end_s: float
    label: str
    kind: str = "manual"
    low_hz: float | None = None
    high_hz: float | None = None
    model_id: int | None = None
    confidence: float | None = None
    region_id: int | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_box(self) -> bool:
        return self.low_hz is not None and self.high_hz is not None

    def as_dict(self) -> dict:
        return asdict(self)


def check_region(region: Region) -> Region:
    """The region as it will be stored, or a LabelError that says what is wrong with it."""
    if not region.label or not region.label.strip():
        raise LabelError("a region needs a label; choose a label class first")
    if region.kind not in KINDS:
        raise LabelError(f"a region's kind is one of {', '.join(KINDS)}, not {region.kind!r}")
    start, end = float(region.start_s), float(region.end_s)
    if not (start == start and end == end) or start < 0:  # NaN or before the clip
        raise LabelError(f"a region cannot start at {region.start_s}; times are seconds from the clip's start")
    if end <= start:
        raise LabelError(f"a region must end after it starts (start {start:.3f} s, end {end:.3f} s)")
    low, high = region.low_hz, region.high_hz
    if (low is None) != (high is None):
        raise LabelError("a time-frequency box needs both a low and a high frequency")
    if low is not None and not 0 <= float(low) < float(high):
        raise LabelError(f"a box's frequencies must rise from low to high (got {low} to {high} Hz)")
    return replace(
        region,
        start_s=start,
        end_s=end,
        label=region.label.strip(),
        low_hz=None if low is None else float(low),
        high_hz=None if high is None else float(high),
    )


# -- reading --------------------------------------------------------------------------------------------------
def region(project: Project, region_id: int) -> Region:
    rows = project.db.execute_returning_dicts("SELECT * FROM regions WHERE region_id = ?", [region_id])
    if not rows:
        raise LabelError(f"region {region_id} is no longer in the project")
    return _from_row(rows[0])


def regions(
    project: Project,
    clip_id: str | None = None,
    kinds: Sequence[str] = KINDS,
    labels: Sequence[str] | None = None,
    model_id: int | None = None,
) -> list[Region]:
    """Regions of one clip (or the whole project), of the given kinds and labels, by clip then time."""
    where, values = [f"kind IN ({', '.join('?' for _ in kinds)})"], list(kinds)
    if clip_id is not None:
        where.append("clip_id = ?")
        values.append(clip_id)
    if labels is not None:
        where.append(f"label IN ({', '.join('?' for _ in labels)})")
        values += list(labels)
    if model_id is not None:
        where.append("model_id = ?")
        values.append(model_id)
    rows = project.db.execute_returning_dicts(
        f"SELECT * FROM regions WHERE {' AND '.join(where)} ORDER BY clip_id, start_s, region_id", values
    )
    return [_from_row(row) for row in rows]


def label_counts(project: Project) -> dict[str, int]:
    """How many manual regions carry each label."""
    return dict(
        project.db.execute("SELECT label, count(*) FROM regions WHERE kind = 'manual' GROUP BY label").fetchall()
    )


# -- writing regions ----------------------------------------------------------------------------------------
def add_region(project: Project, new: Region) -> Region:
    """Store one region (keeping its region_id when it has one: undoing a delete) and return it."""
    return add_regions(project, [new])[0]


def add_regions(project: Project, new: Iterable[Region]) -> list[Region]:
    """Store regions in one transaction; manual labels the project lacks become new label classes."""
    checked = [check_region(r) for r in new]
    db, stamp = project.db, now()
    stored = []
    with db.atomic():
        # Proposals say what a detector found ("anomaly"): only the user's own labels become classes.
        _ensure_classes(project, [r.label for r in checked if r.kind == "manual"])
        for r in checked:
            cursor = db.execute(
                "INSERT INTO regions (region_id, clip_id, start_s, end_s, low_hz, high_hz, label, kind, model_id, "
                "confidence, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    r.region_id,
                    r.clip_id,
                    r.start_s,
                    r.end_s,
                    r.low_hz,
                    r.high_hz,
                    r.label,
                    r.kind,
                    r.model_id,
                    r.confidence,
                    stamp,
                    stamp,
                ],
            )
            stored.append(replace(r, region_id=int(cursor.lastrowid)))
    return stored


def update_region(project: Project, region_id: int, **changes: object) -> Region:
    """Change a region's bounds, box, label or kind; returns the region as stored."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a region")
    current = region(project, region_id)
    updated = check_region(replace(current, **changes))
    db = project.db
    with db.atomic():
        if updated.kind == "manual":
            _ensure_classes(project, [updated.label])
        db.execute(
            "UPDATE regions SET start_s = ?, end_s = ?, low_hz = ?, high_hz = ?, label = ?, kind = ?, "
            "model_id = ?, confidence = ?, updated_at = ? WHERE region_id = ?",
            [
                updated.start_s,
                updated.end_s,
                updated.low_hz,
                updated.high_hz,
                updated.label,
                updated.kind,
                updated.model_id,
                updated.confidence,
                now(),
                region_id,
            ],
        )
    return updated


def update_regions(project: Project, changes: Sequence[tuple[int, dict]]) -> list[Region]:
    """Several regions changed in one transaction (accepting every proposal of a clip)."""
    with project.db.atomic():
        return [update_region(project, region_id, **fields) for region_id, fields in changes]


def delete_region(project: Project, region_id: int) -> Region:
    """Remove a region; returns it as it was, so `add_region` can put it back with the same id."""
    current = region(project, region_id)
    with project.db.atomic():
        project.db.execute("DELETE FROM regions WHERE region_id = ?", [region_id])
    return current


def replace_proposals(
    project: Project, clip_id: str, model_id: int | None, proposals: Iterable[Region]
) -> list[Region]:
    """A clip's proposals from one model, replaced by `proposals` in one transaction. Stretches already
    labelled are cut out of them (an accepted proposal is not proposed again); pieces shorter than
    `MIN_PIECE_S` that remain are dropped."""
    new = [
        check_region(replace(p, clip_id=clip_id, kind="proposal", model_id=model_id, region_id=None)) for p in proposals
    ]
    db = project.db
    with db.atomic():
        labelled = [(m.start_s, m.end_s) for m in regions(project, clip_id, ("manual",))]
        new = [piece for p in new for piece in _cut(p, labelled)]
        db.execute("DELETE FROM regions WHERE clip_id = ? AND kind = 'proposal' AND model_id IS ?", [clip_id, model_id])
        stored = add_regions(project, new) if new else []
    return stored


def _cut(proposal: Region, labelled: list[tuple[float, float]]) -> list[Region]:
    """What is left of a proposal outside the labelled stretches."""
    pieces = [(proposal.start_s, proposal.end_s)]
    for low, high in labelled:
        kept = []
        for start, end in pieces:
            if end <= low or high <= start:
                kept.append((start, end))
            else:
                kept += [(a, b) for a, b in ((start, low), (high, end)) if b - a >= MIN_PIECE_S]
        pieces = kept
    return [replace(proposal, start_s=start, end_s=end) for start, end in pieces]


# -- label classes --------------------------------------------------------------------------------------------
def label_class(project: Project, name: str) -> LabelClass:
    found = [c for c in project.label_classes() if c.name == name]
    if not found:
        raise LabelError(f"there is no label class {name!r}")
    return found[0]


def add_label_class(project: Project, name: str, colour: str | None = None) -> LabelClass:
    name = name.strip()
    if not name:
        raise LabelError("a label class needs a name")
    if any(c.name.lower() == name.lower() for c in project.label_classes()):
        raise LabelError(f"there is already a label class {name!r}")
    with project.db.atomic():
        _ensure_classes(project, [name], colour)
    return label_class(project, name)


def rename_label_class(project: Project, old: str, new: str) -> LabelClass:
    """Rename a class; the manual regions and proposals that carry it are relabelled with it."""
    new = new.strip()
    current = label_class(project, old)
    if not new:
        raise LabelError("a label class needs a name")
    if new != old and any(c.name.lower() == new.lower() and c.name != old for c in project.label_classes()):
        raise LabelError(f"there is already a label class {new!r}; relabel its regions instead of merging")
    db = project.db
    with db.atomic():
        db.execute("UPDATE label_classes SET name = ? WHERE name = ?", [new, old])
        db.execute(
            "UPDATE regions SET label = ?, updated_at = ? WHERE label = ? AND kind != 'truth'", [new, now(), old]
        )
    return replace(current, name=new)


def recolour_label_class(project: Project, name: str, colour: str) -> LabelClass:
    label_class(project, name)
    with project.db.atomic():
        project.db.execute("UPDATE label_classes SET colour = ? WHERE name = ?", [colour, name])
    return label_class(project, name)


def move_label_class(project: Project, name: str, position: int) -> list[LabelClass]:
    """Put a class at `position` (0 = first); shortcuts 1-9 follow the new order."""
    names = [c.name for c in project.label_classes()]
    if name not in names:
        raise LabelError(f"there is no label class {name!r}")
    names.remove(name)
    names.insert(max(0, min(position, len(names))), name)
    with project.db.atomic():
        _renumber(project, names)
    return project.label_classes()


def remove_label_class(project: Project, name: str) -> None:
    """Remove a class no region uses (relabel or delete its regions first)."""
    label_class(project, name)
    used = project.db.execute("SELECT count(*) FROM regions WHERE label = ? AND kind != 'truth'", [name]).fetchone()[0]
    if used:
        raise LabelError(f"{used} region(s) are labelled {name!r}; relabel or delete them before removing the class")
    with project.db.atomic():
        project.db.execute("DELETE FROM label_classes WHERE name = ?", [name])
        _renumber(project, [c.name for c in project.label_classes()])


def _ensure_classes(project: Project, names: Iterable[str], colour: str | None = None) -> None:
    """Add the classes that are missing, at the end (inside the caller's transaction)."""
    existing = project.label_classes()
    known = {c.name for c in existing}
    position = max((c.position for c in existing), default=-1) + 1
    for name in dict.fromkeys(names):
        if name in known:
            continue
        chosen = colour or PALETTE[position % len(PALETTE)]
        project.db.execute(
            "INSERT INTO label_classes (name, colour, shortcut, position) VALUES (?, ?, ?, ?)",
            [name, chosen, str(position + 1) if position < 9 else None, position],
        )
        known.add(name)
        position += 1


def _renumber(project: Project, names: Sequence[str]) -> None:
    for position, name in enumerate(names):
        project.db.execute(
            "UPDATE label_classes SET position = ?, shortcut = ? WHERE name = ?",
            [position, str(position + 1) if position < 9 else None, name],
        )


def _from_row(row: dict) -> Region:
    return Region(
        clip_id=row["clip_id"],
        start_s=row["start_s"],
        end_s=row["end_s"],
        label=row["label"],
        kind=row["kind"],
        low_hz=row["low_hz"],
        high_hz=row["high_hz"],
        model_id=row["model_id"],
        confidence=row["confidence"],
        region_id=row["region_id"],
    )
