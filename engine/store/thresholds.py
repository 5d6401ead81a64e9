"""Decision thresholds a user adjusts, per model (one detector's model of one group), kept in the models table.

The fitted threshold (`models.threshold`, learnt from held-out training-normal scores) is never changed; a
threshold set by the user goes beside it (`adjusted_threshold`, with how and when it was set) and decides from
then on: the decisions of the model's stored scores are recomputed at once, and scoring, proposals, evaluation
and the window read the same `effective_threshold`. Undo is setting the old value back; `reset_threshold` goes
back to the fitted one. Models trained from labels for the whole project (the supervised classifiers) decide by
their own rule (a vote over segments) and are not adjusted here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from engine.errors import ArtifactError, EarmarkError
from engine.store import health, results
from engine.store.project import Project, now


@dataclass(frozen=True)
class ThresholdChange:
    """What a change did: the model, its threshold before and after, and the clips whose decision flipped."""

    model_id: int
    old: float
    new: float
    changed_clips: list[str]


def effective_threshold(record: results.ModelRecord) -> float | None:
    """The threshold that decides for `record`: the one the user set, else the fitted one."""
    if record.adjusted_threshold is not None:
        return float(record.adjusted_threshold)
    return None if record.threshold is None else float(record.threshold)


def set_threshold(
    project: Project,
    model_id: int,
    value: float,
    set_by: str = "value",
    fpr: float | None = None,
) -> ThresholdChange:
    """Make `value` the model's threshold and recompute the decisions of its stored scores (score > value),
    in one transaction. `set_by` says how it was chosen ("value" or "fpr", with the `fpr` asked for). Setting
    the fitted threshold itself clears the adjustment (so undoing a change restores the fitted state)."""
    record = _adjustable(project, model_id)
    value = float(value)
    if not math.isfinite(value):
        raise EarmarkError(f"a threshold must be a finite number, not {value!r}; nothing was changed")
    if set_by not in ("value", "fpr"):
        raise ValueError(f"set_by must be 'value' or 'fpr', not {set_by!r}")
    fitted = None if record.threshold is None else float(record.threshold)
    adjusted = None if fitted is not None and value == fitted else value
    return _apply(project, record, value, adjusted, set_by if adjusted is not None else None, fpr)


def reset_threshold(project: Project, model_id: int) -> ThresholdChange:
    """Back to the fitted threshold; decisions recomputed as with `set_threshold`."""
    record = _adjustable(project, model_id)
    if record.threshold is None:
        raise EarmarkError(f"{_name(record)} has no fitted threshold to go back to; fit it again")
    return _apply(project, record, float(record.threshold), None, None, None)


def threshold_for_fpr(project: Project, model_id: int, fpr: float) -> float:
    """The threshold that flags at most the share `fpr` of the model's held-out training-normal scores (those
    its fitted threshold was learnt from, kept in model.json "held_out"): the largest score that may not be
    exceeded by more than floor(fpr x n) of them. A clear EarmarkError when the model kept none."""
    record = _record(project, model_id)
    if not 0.0 <= float(fpr) < 1.0:
        raise EarmarkError(f"a false-positive rate is a share between 0 and 1 (0.05 for 5 %), not {fpr}")
    scores = held_out_scores(project, record)
    if scores.size == 0:
        raise EarmarkError(
            f"{_name(record)} kept no held-out training-normal scores to choose a threshold by false-positive "
            f"rate from (a model fitted by an older Earmark); fit it again, or set the threshold by value"
        )
    ordered = np.sort(scores)
    allowed = int(math.floor(float(fpr) * ordered.size + 1e-9))
    return float(ordered[ordered.size - 1 - min(allowed, ordered.size - 1)])


def held_out_scores(project: Project, record: results.ModelRecord) -> np.ndarray:
    """The model's held-out training-normal clip scores (empty when it kept none)."""
    path = results.model_folder(project, record) / "model.json"
    try:
        held = json.loads(path.read_text()).get("held_out") or []
        values = np.array([float(row[1]) for row in held], dtype=np.float64)
    except (OSError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise ArtifactError(
            f"{path} cannot be read ({type(exc).__name__}); fit {record.detector} for {record.group_key} again"
        ) from None
    return values[np.isfinite(values)]


def find_model(project: Project, detector: str, group: str) -> results.ModelRecord:
    """The newest model of `detector` for `group`; a clear EarmarkError naming what there is otherwise."""
    fitted = results.fitted_detectors(project)
    if detector not in fitted:
        known = ", ".join(fitted) or "none yet"
        raise EarmarkError(f"no {detector} model in {project.folder} (fitted detectors: {known})")
    latest = results.latest_models(project, detector)
    if group not in latest:
        raise EarmarkError(f"{detector} has no model for group {group!r}; its groups: {', '.join(sorted(latest))}")
    return latest[group]


def _record(project: Project, model_id: int) -> results.ModelRecord:
    record = results.model(project, model_id)
    if record is None:
        raise EarmarkError(f"{project.folder} has no model {model_id}; it may have been replaced by a newer fit")
    return record


def _adjustable(project: Project, model_id: int) -> results.ModelRecord:
    if project.read_only:
        raise health.ReadOnlyProject(health.read_only_message(project.folder, project.read_only, "a threshold"))
    record = _record(project, model_id)
    if record.group_key == results.ALL_GROUPS:
        raise EarmarkError(
            f"{_name(record)} was trained from labels for the whole project and decides by its own vote; its "
            "threshold is not adjusted here (train it again with other settings)"
        )
    return record


def _apply(
    project: Project,
    record: results.ModelRecord,
    value: float,
    adjusted: float | None,
    set_by: str | None,
    fpr: float | None,
) -> ThresholdChange:
    old = effective_threshold(record)
    db = project.db
    with results.stop_when_full(project), db.atomic():
        changed = [
            row[0]
            for row in db.execute(
                "SELECT clip_id FROM scores WHERE model_id = ? AND decision != (score > ?) ORDER BY clip_id",
                [record.model_id, value],
            ).fetchall()
        ]
        db.execute(
            "UPDATE models SET adjusted_threshold = ?, threshold_set_by = ?, threshold_fpr = ?, "
            "threshold_set_at = ? WHERE model_id = ?",
            [adjusted, set_by, fpr if set_by == "fpr" else None, now() if set_by else None, record.model_id],
        )
        db.execute("UPDATE scores SET decision = (score > ?) WHERE model_id = ?", [value, record.model_id])
    return ThresholdChange(record.model_id, float("nan") if old is None else old, value, changed)


def _name(record: results.ModelRecord) -> str:
    return f"{record.detector} for {record.group_key} (model {record.model_id})"
