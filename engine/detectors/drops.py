"""Files dropped on the window: which group's models score them, and what the project remembers about it.

A drop whose machine and section are known (a data-set clip, or one assigned afterwards) is scored by its
own group's models. A drop without them is scored by the models of the group the user chose ("Score drops
with"), or, by default, of the group whose training normals it resembles most; that guess is kept in the
clip's attributes so the table shows it after a restart, marked "(guessed)".

Resemblance is measured in one feature space for every group, so groups can be ranked: the distance from
the drop's log-mel clip vector (per band: mean, spread and 95th percentile of the level, in dB) to the
nearest normal training clip of the group. The closest group is the guess. Each distance is also divided by
that group's own threshold on it: the 90th percentile of its training normals' leave-one-out nearest
distances (the quantile the detectors' thresholds use; 1.0 is as far as the farthest tenth of the group's
own normals are from their nearest fellow). A drop more than `UNLIKE_RATIO` times every group's threshold
away is "unlike every trained group". The ranking uses the plain distances, not the ratios: a group whose
normals vary a lot (a valve's cycles, a target domain of three clips) has a wide threshold and would draw
drops of other machines towards it (on the synthetic set below, ranking by ratio found the right machine for
34 of 48 drops, by distance for 46).

The detectors' anomaly scores are not used to find the group: a one-class model of one machine does not
score another machine's sound comparably (an autoencoder of a busy sound reconstructs a plain one well;
patch and nearest-neighbour distances scale with each group's own variability), and on the synthetic set
ranking by score / threshold (the median over knn, patch_memory and dcase_ae) found the right machine for 16
of 48 new recordings (chance: 16) and the right group for 11; the distance found the machine for 46 and the
group (machine and section) for 27. (Synthetic set at scale 0.02, 2 s clips, 3 machines x 2 sections, two
new recordings per test kind: `tests/bench/bench_drop_groups.py`.)
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.data.clip import Clip
from engine.errors import EarmarkError
from engine.jobs import Progress
from engine.store import results
from engine.store.project import Project

if TYPE_CHECKING:  # the window's clip table reads this module's names at start-up, before torch is loaded
    from engine.detectors.base import Detection

#: A drop farther than this many times every group's threshold from all their training normals is marked
#: "unlike every trained group": twice as far as the group's own outlying normals are from their nearest
#: fellow. On the synthetic set (above) none of the 48 new normal and anomalous recordings of trained
#: machines was past 2 for every group (source and target domain), while a loud chirp (6.8x), loud white
#: noise (2.5x) and a warbling tone (6.3x) were; quieter noise, a square wave and a plain hum were not
#: (1.3-1.9x: they are scored by the closest group and keep its decision). With the median instead of the
#: 90th percentile and 3 times it, 10 of the 48 machine recordings (target domain, three training clips)
#: were called unlike.
UNLIKE_RATIO = 2.0
#: A group's threshold on the distance: this quantile of its normals' leave-one-out nearest distances.
THRESHOLD_QUANTILE = 0.9
#: The feature the resemblance is measured on: the default encoder, which needs no weights.
ENCODER = "logmel"

#: Clip attributes a drop's verdict is kept in (strings, like every attribute).
SCORED_BY = "scored_by_group"
GUESSED_GROUP = "guessed_group"
UNLIKE = "unlike_every_group"

OWN, CHOSEN, GUESSED = "own", "chosen", "guessed"
#: What the window's decision column and status line say for such a drop, instead of "anomaly".
UNLIKE_TEXT = "unlike every trained group"


@dataclass
class DropVerdict:
    """Which models scored a drop and why. `how`: "own" (its machine and section), "chosen" (the group the
    user picked), or "guessed" (the closest group). Only when guessed: `distances`, group -> distance to
    the group's nearest normal training clip; `resemblance`, group -> that distance / the group's threshold;
    `unlike_every_group`: every group's ratio is above `UNLIKE_RATIO`. (Distance / threshold: see the module.)"""

    clip_id: str
    group: str
    how: str
    distances: dict[str, float] = field(default_factory=dict)
    resemblance: dict[str, float] = field(default_factory=dict)
    unlike_every_group: bool = False
    detections: dict[str, Detection] = field(default_factory=dict)

    @property
    def guessed(self) -> bool:
        return self.how == GUESSED

    @property
    def decision(self) -> str:
        """What the window's decision column says: "unlike every trained group", "anomaly" (any detector
        flags it) or "normal"."""
        if self.unlike_every_group:
            return UNLIKE_TEXT
        return "anomaly" if any(d.decision for d in self.detections.values()) else "normal"

    def describe(self) -> str:
        """One line for the status bar: which models scored it and how the group was found."""
        if self.how == GUESSED:
            closest = f"closest of {len(self.resemblance)} group{'s' if len(self.resemblance) != 1 else ''}"
            ratio = self.resemblance.get(self.group)
            if self.unlike_every_group:
                return (
                    f"{UNLIKE_TEXT} (even the closest group is {ratio:.1f}x its threshold away); "
                    f"scored by {self.group} (guessed: {closest})"
                )
            return f"scored by {self.group} (guessed: {closest}, {ratio:.1f}x its threshold away)"
        return f"scored by {self.group} ({'its own group' if self.how == OWN else 'the group chosen for drops'})"


def group_fields(group: str | None) -> tuple[str | None, str | None]:
    """(machine, section) of a group key such as "fan/section_00" (`Clip.group`); None where it has none."""
    if not group or "/section_" not in group:
        return None, None
    machine, section = group.split("/section_", 1)
    return (None if machine == "unknown" else machine), (None if section == "none" else section)


def candidate_groups(project: Project) -> list[str]:
    """Groups a drop can be scored by: those with a model fitted for the group itself (not a model of the
    whole project, which scores every group alike and tells them apart not at all)."""
    return sorted({m.group_key for m in results.models(project) if m.group_key != results.ALL_GROUPS})


def score_drops(
    session,
    clips: Sequence[Clip],
    group: str | None = None,
    progress: Progress | None = None,
) -> list[DropVerdict]:
    """Score dropped clips: each by its own group's models when its machine and section are known and fitted,
    else by `group` (the user's choice) or, with no choice, by the closest group. Stores the scores of the
    models that scored each clip (earlier scores of other groups' models are removed) and keeps the verdict
    in the clip's attributes. `session` is an `engine.detectors.runs.Session`."""
    from engine.data.changes import refresh_changed
    from engine.detectors.runs import score_with_group

    progress = progress or Progress()
    project = session.project
    clips = refresh_changed(project, clips, progress, session.cache)  # before matching: a changed file is read again
    fitted = candidate_groups(project)
    if not fitted and not results.models(project):
        raise EarmarkError(
            "no detector is fitted yet; fit one (Train > Fit all detectors, or `earmark fit "
            f"{project.folder}`) before scoring dropped files"
        )
    if group is not None and group not in fitted and group != results.ALL_GROUPS:
        raise EarmarkError(
            f"no detector is fitted for {group}; choose another group to score drops with, or auto (closest group)"
        )
    verdicts: dict[str, DropVerdict] = {}
    unknown: list[Clip] = []
    for clip in clips:
        if (clip.machine_type is not None or clip.section_id is not None) and clip.group in fitted:
            verdicts[clip.clip_id] = DropVerdict(clip.clip_id, clip.group, OWN)
        elif group is not None or not fitted:
            verdicts[clip.clip_id] = DropVerdict(clip.clip_id, group or results.ALL_GROUPS, CHOSEN)
        else:
            unknown.append(clip)
    if unknown:
        measured = resemblance(session, unknown, fitted, progress.child("finding the closest group: "))
        for clip in unknown:
            if clip.clip_id not in measured:
                continue  # unreadable: reported by the feature cache
            distances, ratios = measured[clip.clip_id]
            closest = min(distances, key=distances.get)
            verdicts[clip.clip_id] = DropVerdict(
                clip.clip_id, closest, GUESSED, distances, ratios, all(r > UNLIKE_RATIO for r in ratios.values())
            )
    by_group: dict[str, list[Clip]] = {}
    for clip in clips:
        if clip.clip_id in verdicts:
            by_group.setdefault(verdicts[clip.clip_id].group, []).append(clip)
    for index, (key, group_clips) in enumerate(sorted(by_group.items())):
        step = progress.child(f"scoring with {key} ({index + 1}/{len(by_group)}): ")
        found = score_with_group(session, key, group_clips, step)
        for clip in group_clips:
            verdicts[clip.clip_id].detections = found.get(clip.clip_id, {})
        forget_other_groups(project, [c.clip_id for c in group_clips], key)
    done = [verdicts[c.clip_id] for c in clips if c.clip_id in verdicts and verdicts[c.clip_id].detections]
    remember(project, done)
    return done


def resemblance(
    session,
    clips: Sequence[Clip],
    groups: Sequence[str],
    progress: Progress | None = None,
) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """clip_id -> (group -> distance to the group's nearest normal training clip, group -> that distance /
    the group's threshold), see the module's docstring. Groups with fewer than two normal training clips
    have no threshold and are left out (reported)."""
    from engine.encoders.base import make_encoder

    progress = progress or Progress()
    encoder = make_encoder(ENCODER, session.cache)
    vectors = {k: e.clip for k, e in encoder.encode(clips, progress).items()}
    found: dict[str, tuple[dict[str, float], dict[str, float]]] = {
        c.clip_id: ({}, {}) for c in clips if c.clip_id in vectors
    }
    compared = 0
    for key in groups:
        reference = _reference(session, encoder, key, progress)
        if reference is None:
            progress.problem(f"{key}: fewer than two normal training clips, so drops are not compared with it")
            continue
        compared += 1
        bank, threshold = reference
        for clip_id, (distances, ratios) in found.items():
            distances[key] = float(np.linalg.norm(bank - vectors[clip_id], axis=1).min())
            ratios[key] = distances[key] / threshold
    if groups and not compared:
        raise EarmarkError(
            "no fitted group has two or more normal training clips to compare drops with; choose "
            'the group in "Score drops with", or set the drop\'s machine and section'
        )
    return {k: v for k, v in found.items() if v[0]}


#: Group references already built: (project folder, group, digest of its training clips) -> (bank, threshold).
_REFERENCES: OrderedDict[tuple[str, str, str], tuple[np.ndarray, float]] = OrderedDict()
_KEEP_REFERENCES = 24


def _reference(session, encoder, group: str, progress: Progress) -> tuple[np.ndarray, float] | None:
    """The group's normal training clip vectors and its threshold; built once per set of clips."""
    machine, section = group_fields(group)
    normals = [
        c
        for c in session.project.clips(machine_type=machine, section_id=section, split="train")
        if c.label != "anomaly"
    ]
    digest = hashlib.sha1("\n".join(sorted(c.checksum or c.clip_id for c in normals)).encode()).hexdigest()
    key = (str(session.project.folder), group, digest)
    if key in _REFERENCES:
        _REFERENCES.move_to_end(key)
        return _REFERENCES[key]
    if len(normals) < 2:
        return None
    encoded = encoder.encode(normals, progress.child(f"{group}: "))
    if len(encoded) < 2:
        return None
    bank = np.stack([e.clip for e in encoded.values()]).astype(np.float64)
    threshold = float(np.quantile(_nearest_other(bank), THRESHOLD_QUANTILE))
    reference = bank, max(threshold, 1e-6)  # identical training clips: any difference is far
    _REFERENCES[key] = reference
    while len(_REFERENCES) > _KEEP_REFERENCES:
        _REFERENCES.popitem(last=False)
    return reference


def _nearest_other(bank: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row (leave-one-out), in blocks so that a group of thousands
    of clips needs no thousands-squared matrix; above `_MOST_ROWS` rows, for a fixed sample of them."""
    rows = np.arange(len(bank))
    if len(rows) > _MOST_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, _MOST_ROWS, replace=False))
    squared = (bank**2).sum(1)
    nearest = np.empty(len(rows))
    for start in range(0, len(rows), 512):
        block = rows[start : start + 512]
        distances = squared[block, None] + squared[None, :] - 2 * bank[block] @ bank.T
        distances[np.arange(len(block)), block] = np.inf
        nearest[start : start + len(block)] = np.sqrt(np.maximum(distances.min(1), 0.0))
    return nearest


#: A group's threshold is measured on at most this many of its normals (each against all of them).
_MOST_ROWS = 2000


def forget_other_groups(project: Project, clip_ids: Sequence[str], group: str) -> None:
    """Remove the clips' scores from models of other groups (a drop first guessed as one group, then scored
    as another): the table shows a detector's newest model's score, which may be the stale one."""
    db = project.db
    stale = [
        (model_id, clip_id, artifact)
        for clip_id in clip_ids
        for model_id, artifact in db.execute(
            "SELECT s.model_id, s.map_artifact FROM scores s JOIN models m ON m.model_id = s.model_id "
            "WHERE s.clip_id = ? AND m.group_key NOT IN (?, ?)",
            [clip_id, group, results.ALL_GROUPS],
        ).fetchall()
    ]
    if not stale:
        return
    with db.atomic():
        db.conn.executemany(
            "DELETE FROM scores WHERE model_id = ? AND clip_id = ?",
            [(model_id, clip_id) for model_id, clip_id, _ in stale],
        )
    for *_, artifact in stale:
        results.remove_artifact(project, artifact)


def remember(project: Project, verdicts: Sequence[DropVerdict]) -> None:
    """Keep each verdict in its clip's attributes (`SCORED_BY`, and `GUESSED_GROUP` / `UNLIKE` where they
    hold, removed where they no longer do), so the table shows them after a restart."""
    db = project.db
    with db.atomic():
        for verdict in verdicts:
            row = db.execute("SELECT attributes FROM clips WHERE clip_id = ?", [verdict.clip_id]).fetchone()
            if row is None:
                continue
            attributes = {k: v for k, v in json.loads(row[0] or "{}").items() if k not in (GUESSED_GROUP, UNLIKE)}
            attributes[SCORED_BY] = verdict.group
            if verdict.guessed:
                attributes[GUESSED_GROUP] = verdict.group
            if verdict.unlike_every_group:
                attributes[UNLIKE] = "yes"
            db.execute(
                "UPDATE clips SET attributes = ? WHERE clip_id = ?",
                [json.dumps(attributes, sort_keys=True), verdict.clip_id],
            )
