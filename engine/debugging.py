"""The debugging tools of trained detectors, behind `earmark debug freeze|splits|recon`.

- `freeze` trains a detector on one group's normal training clips with one branch of its network frozen for
  the whole run, in a scratch training folder under `artifacts/logs/debug_freeze/` (the project's models stay
  as they are), and writes the epoch rows (loss per part, gradient norm per branch) as
  `artifacts/logs/debug_freeze_<branch>.csv` with a chart of them beside it (`.png`). A frozen branch that
  still shows a gradient, or a free one whose gradient is zero, points at a wiring fault.
- `make_splits` writes a group's "ok" (normal) and "ng" (anomalous) test clips as two CSV files under
  `artifacts/logs/debug_splits/<group>/`: tables a person can read and edit to compare chosen clips (never a
  pickled file: nothing is unpickled from a project).
- `reconstruction` measures the frame reconstruction error of a fitted model on both splits: if anomalies
  do not reconstruct worse than normal clips, the score cannot tell them apart either.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.csv_cells import cell, unescape_cell
from engine.data.changes import refresh_changed
from engine.data.clip import Clip
from engine.errors import EarmarkError
from engine.files import safe_name, write_text_atomic
from engine.histories import RUN_FILE
from engine.jobs import Progress
from engine.line_chart import Panel, write_chart
from engine.store import results
from engine.store.project import Project
from engine.training import HISTORY, history_csv

SPLITS = ("ok", "ng")
#: The label of each split's clips.
SPLIT_LABELS = {"ok": "normal", "ng": "anomaly"}
SPLIT_COLUMNS = ("clip_id", "path", "domain", "label")


def logs_folder(project: Project) -> Path:
    return project.artifacts / "logs"


def splits_folder(project: Project, group: str) -> Path:
    return logs_folder(project) / "debug_splits" / safe_name(group)


# -- ok / ng splits -----------------------------------------------------------------------------------------------
@dataclass
class Splits:
    group: str
    clips: dict[str, list[Clip]]  # "ok" and "ng"
    folder: Path
    #: Written by this call (False: read from files written before).
    made: bool


def make_splits(project: Project, group: str) -> Splits:
    """Write the group's normal test clips as ok.csv and its anomalous ones as ng.csv."""
    tests = [c for c in project.clips(split="test") if c.group == group]
    if not tests:
        known = sorted({c.group for c in project.clips(split="test")})
        raise EarmarkError(
            f"group {group!r} has no test clips; groups that have some: {', '.join(known) or 'none'} "
            f"(`earmark info {project.folder}` lists what the project holds)"
        )
    chosen = {name: [c for c in tests if c.label == label] for name, label in SPLIT_LABELS.items()}
    folder = splits_folder(project, group)
    for name, clips in chosen.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(SPLIT_COLUMNS)
        writer.writerows([cell(c.clip_id), cell(str(c.path)), cell(c.domain), cell(c.label)] for c in clips)
        write_text_atomic(folder / f"{name}.csv", buffer.getvalue())
    return Splits(group, chosen, folder, True)


def load_splits(project: Project, group: str, progress: Progress | None = None) -> Splits:
    """The splits written before for `group` (a clip no longer in the project is named and left out), or
    new ones when there are none."""
    progress = progress or Progress()
    folder = splits_folder(project, group)
    if not all((folder / f"{name}.csv").is_file() for name in SPLITS):
        return make_splits(project, group)
    found: dict[str, list[Clip]] = {}
    held = {c.clip_id: c for c in project.clips()}
    for name in SPLITS:
        path = folder / f"{name}.csv"
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise EarmarkError(
                f"cannot read {path} ({exc}); write the splits again with `earmark debug splits "
                f"{project.folder} --group {group}`"
            ) from None
        if rows and "clip_id" not in rows[0]:
            raise EarmarkError(
                f"{path} has no clip_id column; write the splits again with `earmark debug splits "
                f"{project.folder} --group {group}`"
            )
        found[name] = []
        for row in rows:
            clip_id = unescape_cell(row["clip_id"] or "")
            if clip_id in held:
                found[name].append(held[clip_id])
            else:
                progress.problem(f"{path.name}: clip {clip_id!r} is no longer in the project; left out")
    return Splits(group, found, folder, False)


# -- reconstruction error per split -------------------------------------------------------------------------------
@dataclass
class SplitError:
    """Frame reconstruction MSE over every frame of a split's clips."""

    split: str
    clips: int
    frames: int
    mean: float
    std: float


def reconstructing_detectors() -> list[str]:
    """The detectors that reconstruct their input (and so have a frame reconstruction error)."""
    from engine.detectors.registry import detector_class, detector_keys

    return [k for k in detector_keys(None) if hasattr(detector_class(k), "frame_reconstruction_errors")]


def reconstruction(
    session,
    detector: str,
    group: str,
    progress: Progress | None = None,
) -> tuple[Splits, list[SplitError]]:
    """The mean and standard deviation of the frame reconstruction MSE of the group's newest `detector`
    model on its ok and ng split (`load_splits`)."""
    from engine.detectors.registry import detector_class

    progress = progress or Progress()
    project = session.project
    if not hasattr(detector_class(detector), "frame_reconstruction_errors"):
        able = ", ".join(reconstructing_detectors()) or "none"
        raise EarmarkError(
            f"{detector} does not reconstruct its input, so it has no reconstruction error to "
            f"compare; detectors that do: {able}"
        )
    record = results.model_for_group(results.latest_models(project, detector), group)
    if record is None:
        raise EarmarkError(
            f"no fitted {detector} model for {group}; run `earmark fit {project.folder} --detector "
            f"{detector} --group {group}` first"
        )
    splits = load_splits(project, group, progress)
    model = session.model(record)
    clips = refresh_changed(project, [c for name in SPLITS for c in splits.clips[name]], progress, session.cache)
    errors = model.frame_reconstruction_errors(clips, progress.child(f"{detector} {group}: "))
    figures = []
    for name in SPLITS:
        arrays = [
            np.asarray(errors[c.clip_id], dtype=np.float64).ravel() for c in splits.clips[name] if c.clip_id in errors
        ]
        frames = np.concatenate(arrays) if arrays else np.zeros(0)
        frames = frames[np.isfinite(frames)]
        figures.append(
            SplitError(
                name,
                len(arrays),
                len(frames),
                float(frames.mean()) if len(frames) else math.nan,
                float(frames.std()) if len(frames) else math.nan,
            )
        )
    return splits, figures


# -- one branch frozen ---------------------------------------------------------------------------------------------
@dataclass
class FreezeRun:
    detector: str
    group: str
    branch: str
    rows: list[dict]
    csv: Path
    png: Path
    folder: Path  # the scratch training folder: its history.json stays (Train > Training curves... shows it)


def freeze_folder(project: Project, detector: str, group: str, branch: str) -> Path:
    return logs_folder(project) / "debug_freeze" / safe_name(detector) / safe_name(group) / safe_name(branch)


def freeze(
    session,
    detector: str,
    branch: str,
    epochs: int,
    group: str | None = None,
    settings: Mapping[str, object] | None = None,
    progress: Progress | None = None,
) -> FreezeRun:
    """Train `detector` on a group's normal training clips with `branch` frozen for all `epochs`, in a scratch
    folder; write the epoch rows as `debug_freeze_<branch>.csv` and their chart as `.png` under the logs."""
    from engine.detectors.registry import detector_class, make_config
    from engine.detectors.runs import groups_of

    progress = progress or Progress()
    project = session.project
    cls = detector_class(detector)
    if not _freezable(cls):
        raise EarmarkError(
            f"{detector} does not train a network with branches, so none can be frozen; detectors "
            f"that do: {', '.join(_trained_detectors()) or 'none'}"
        )
    if epochs < 1:
        raise EarmarkError("--epochs must be at least 1")
    model = cls(
        make_config(detector, {**(settings or {}), "epochs": epochs}), cache=session.cache, device=session.device
    )
    names = list(model.branches())
    if branch not in names:
        raise EarmarkError(f"{detector} has no branch {branch!r}; its branches are: {', '.join(names)}")
    model.config = dataclasses.replace(model.config, freeze=branch)
    grouped = groups_of([c for c in project.clips() if c.split in ("train", "supplemental")])
    trainable = {
        g: clips for g, clips in grouped.items() if any(c.split == "train" and c.label != "anomaly" for c in clips)
    }
    if group is None and trainable:
        group = next(iter(trainable))
    if group not in trainable:
        known = ", ".join(trainable) or "none"
        raise EarmarkError(f"group {group!r} has no normal training clips; groups that have some: {known}")
    clips = refresh_changed(project, trainable[group], progress, session.cache)
    folder = freeze_folder(project, detector, group, branch)
    if folder.exists():  # an earlier debug run's: this one starts afresh
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model.training_folder, model.resume = folder, False
    try:
        model.fit(clips, progress.child(f"{detector} {group}, {branch} frozen: "))
    except BaseException:  # cancelled or failed: no half run's checkpoints left behind
        shutil.rmtree(folder, ignore_errors=True)
        raise
    rows = [dict(row) for row in (getattr(model, "history", None) or _read_history(folder / HISTORY))]
    for leftover in folder.iterdir():  # a scratch run: its weights and checkpoints (each network's) go
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    if not rows:
        raise EarmarkError(f"{detector} kept no epoch figures while training; nothing to write")
    write_text_atomic(folder / HISTORY, json.dumps(rows, indent=1))
    write_text_atomic(
        folder / RUN_FILE,
        json.dumps({"detector": detector, "group": group, "frozen": branch, "epochs": epochs}, indent=1),
    )
    logs = logs_folder(project)
    table = logs / f"debug_freeze_{safe_name(branch)}.csv"
    write_text_atomic(table, history_csv(rows, columns(rows)))
    chart = write_chart(table.with_suffix(".png"), curve_panels(rows, f"{detector} {group}, {branch} frozen"))
    return FreezeRun(detector, group, branch, rows, table, chart, folder)


def _freezable(cls: type) -> bool:
    """Whether a detector class trains a network with branches and a `freeze` setting."""
    return hasattr(cls, "branches") and "freeze" in getattr(cls.Config, "__dataclass_fields__", {})


def _trained_detectors() -> list[str]:
    from engine.detectors.registry import detector_class, detector_keys

    return [k for k in detector_keys(None) if _freezable(detector_class(k))]


def _read_history(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """The columns of epoch rows: epoch, the losses (total, then per part), the gradient norms per branch,
    then the rest (seconds, validation figures) in the order they first appear."""
    seen = list(dict.fromkeys(key for row in rows for key in row))

    def rank(key: str) -> int:
        if key == "epoch":
            return 0
        if key == "train_loss":
            return 1
        if key.startswith("loss_"):
            return 2
        if key.startswith("grad_norm_"):
            return 3
        return 4

    return sorted(seen, key=lambda key: (rank(key), seen.index(key)))


def curve_panels(rows: Sequence[Mapping[str, object]], title: str) -> list[Panel]:
    """The chart of epoch rows: losses in one panel, gradient norms per branch in another."""
    epochs = [float(row.get("epoch", index + 1)) for index, row in enumerate(rows)]

    def series(keys: list[str]) -> dict[str, tuple[list[float], list[float]]]:
        return {key: (epochs, [_number(row.get(key)) for row in rows]) for key in keys}

    names = columns(rows)
    losses = [k for k in names if k == "train_loss" or k.startswith("loss_") or k == "val_loss"]
    norms = [k for k in names if k.startswith("grad_norm_")]
    return [Panel(f"loss per part: {title}", series(losses)), Panel("gradient norm per branch", series(norms))]


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
