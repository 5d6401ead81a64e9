"""Fitting, enrolling and scoring detectors over a whole project, one model per group.

These are the calls the CLI and the GUI's engine thread make. Each takes a `Progress`; a clip that cannot
be read is reported through `progress.problem` and the rest go on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

import torch

from engine.audio.feature_cache import FeatureCache
from engine.csv_cells import cell
from engine.data.changes import refresh_changed
from engine.data.clip import Clip
from engine.detectors import ensemble
from engine.detectors.base import Detection, Detector, Learning
from engine.detectors.registry import detector_class, load_model, make_config
from engine.device import pick_device
from engine.errors import ArtifactError, EarmarkError
from engine.files import write_text_atomic
from engine.jobs import Progress
from engine.store import results, thresholds
from engine.store.clip_fields import fitting_snapshots, mark_stale
from engine.store.project import Project
from engine.training import BEST, detector_workspace, has_checkpoints


@dataclass
class Session:
    """What a run needs besides the project: the device, the feature cache shared by every model, and the
    models loaded so far (the newest of each detector and group stays loaded, so the next score is warm)."""

    project: Project
    device: torch.device = field(default_factory=pick_device)
    cache: FeatureCache | None = None
    loaded: dict[tuple[str, str], tuple[int, Detector]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = FeatureCache(self.project.artifacts / "features", self.device)

    def model(self, record: results.ModelRecord) -> Detector:
        """The fitted model of `record`, loaded once and kept while it is its group's newest, deciding by
        the threshold the record holds (adjusted by the user, else the fitted one: `engine.store.thresholds`)."""
        key = (record.detector, record.group_key)
        held = self.loaded.get(key)
        if held is not None and held[0] == record.model_id:
            model = held[1]
        else:
            model = load_model(results.model_folder(self.project, record), cache=self.cache, device=self.device)
            if held is None or record.model_id >= held[0]:
                self.loaded[key] = (record.model_id, model)
        # Set on every call: the record may carry a threshold adjusted (or reset) since the model was loaded.
        value = thresholds.effective_threshold(record)
        if value is not None:
            model.threshold = value
        return model


@dataclass
class ScoreRun:
    detector: str
    scored: int
    groups: list[str]
    folder: Path
    detections: list[Detection]


def groups_of(clips: Sequence[Clip]) -> dict[str, list[Clip]]:
    grouped: dict[str, list[Clip]] = {}
    for clip in clips:
        grouped.setdefault(clip.group, []).append(clip)
    return dict(sorted(grouped.items()))


def fit(
    session: Session,
    detector: str,
    settings: Mapping[str, object] | None = None,
    group: str | None = None,
    progress: Progress | None = None,
    fitted_now: dict[tuple[str, str], Detector] | None = None,
    resume: bool = False,
) -> list[results.ModelRecord]:
    """Fit `detector` on every group with normal training clips (or just `group`); one new model each.

    `fitted_now`, where given, collects each new model by (detector, group) for the rest of a run that fits
    several detectors: an ensemble whose members are all in it, with its settings, is built from them
    instead of fitting them again. A detector that trains in epochs trains in the project's
    `artifacts/training/<detector>/<group>/`; with `resume`, groups whose training a cancel or a kill
    interrupted continue from their checkpoints (the others train afresh). Once a group's model is registered,
    its training folder keeps only what `tidy_finished_training` leaves."""
    progress = progress or Progress()
    if detector_class(detector).learning is not Learning.ONE_CLASS:
        how = detector_class(detector).how_to_train().replace("PROJECT", str(session.project.folder))
        raise EarmarkError(f"{detector} is trained from labelled regions, not fitted on normal clips: {how}")
    project = session.project
    if detector == ensemble.KEY and "members" not in (settings or {}):
        settings = {**(settings or {}), **ensemble.fitted_members(results.fitted_detectors(project))}
    config = make_config(detector, settings)
    grouped = groups_of([c for c in project.clips() if c.split in ("train", "supplemental")])
    trainable = {
        g: clips for g, clips in grouped.items() if any(c.split == "train" and c.label != "anomaly" for c in clips)
    }
    if group is not None:
        if group not in trainable:
            known = ", ".join(trainable) or "none"
            raise EarmarkError(f"group {group!r} has no normal training clips; groups that have some: {known}")
        trainable = {group: trainable[group]}
    if not trainable:
        raise EarmarkError(
            f"{project.folder} has no normal training clips (split train, label normal); say which "
            f"clips are, e.g. `earmark set {project.folder} 'pump_*' --machine pump --split train "
            "--label normal` (or Clip properties > Use as normal training clips in the window), "
            "or import them with `earmark import PROJECT FOLDER --split train --label normal`"
        )
    # Only the groups to fit are checked for changed files (a changed one is read again before fitting).
    trainable = groups_of(
        refresh_changed(project, [c for clips in trainable.values() for c in clips], progress, session.cache)
    )
    folders = training_folders(project, detector, trainable, resume)
    earlier = results.latest_models(project, detector)  # whose user-set thresholds a refit carries over
    fitted = []
    before = fitting_snapshots(project)
    for index, (key, clips) in enumerate(trainable.items()):
        step = progress.child(f"{detector} {key} ({index + 1}/{len(trainable)}): ", index, len(trainable))
        members = ensemble.reusable_members(config, key, fitted_now) if detector == ensemble.KEY else None
        if members:
            model = ensemble.EnsembleDetector.from_members(members, config)
            step.update(1, 1, "members fitted in this run, combined")
        else:
            model = detector_class(detector)(config, cache=session.cache, device=session.device)
            if key in folders:
                model.training_folder = folders[key]
                model.resume = resume and has_checkpoints(folders[key])
            model.fit(clips, step)
        if fitted_now is not None:
            fitted_now[(detector, key)] = model
        record = save_model(project, model, key)
        if key in earlier:
            record = _carry_threshold(project, earlier[key], record, by_value=earlier[key].config == record.config)
        if key in folders:
            tidy_finished_training(folders[key])
        if fitting_snapshots(project).get(key) != before.get(key):  # changed meanwhile (Clip properties)
            mark_stale(project, {key})
            record = replace(record, stale=True)
            progress.problem(
                f"{detector} {key}: its clips changed while it was fitted; the new model is marked stale, fit it again"
            )
        fitted.append(record)
    return fitted


def training_folders(
    project: Project,
    detector: str,
    groups: Mapping[str, object],
    resume: bool,
) -> dict[str, Path]:
    """Where each group of a detector that trains in epochs trains; with `resume`, a clear error when no
    group has anything to resume."""
    if not callable(getattr(detector_class(detector), "branches", None)):
        if resume:
            raise EarmarkError(
                f"{detector} does not train in epochs: there is nothing to resume; fit it without --resume"
            )
        return {}
    folders = {key: detector_workspace(project.artifacts, detector, key) for key in groups}
    if resume and not any(has_checkpoints(folder) for folder in folders.values()):
        where = project.artifacts / "training" / detector
        raise EarmarkError(f"nothing to resume: no interrupted {detector} training in {where}; fit without --resume")
    return folders


def tidy_finished_training(folder: Path) -> None:
    """Remove from a registered model's training folder (and its subfolders: a detector training several
    networks) what a finished training no longer needs: the rolling `checkpoints/epoch_NNN.pt` and
    `best.safetensors`, each as large as the model with its optimiser state (about 1 GB for a fine-tuned
    published AST). `checkpoints/last.pt` stays: a `fit --resume` of several groups after a kill takes a
    group that finished from it instead of training it again. `history.json` / `history.csv` stay too (the
    training curves)."""
    for path in [*Path(folder).rglob("checkpoints/epoch_*.pt"), *Path(folder).rglob(BEST)]:
        path.unlink(missing_ok=True)


def save_model(project: Project, model: Detector, group: str, metrics: dict | None = None) -> results.ModelRecord:
    """Write a fitted or trained model's files, then record it: no row points at unwritten weights."""
    model_id, _ = results.add_model(
        project,
        model.key,
        group,
        asdict(model.config),
        model.threshold,
        {**model.info, **(metrics or {})},
        write=model.save,
        frame_threshold=model.frame_threshold,
    )
    return next(m for m in results.models(project, model.key) if m.model_id == model_id)


def load(session: Session, record: results.ModelRecord) -> Detector:
    return session.model(record)


def enrol(
    session: Session,
    detector: str,
    clip_ids: Sequence[str],
    progress: Progress | None = None,
) -> list[results.ModelRecord]:
    """Add target-domain normal clips to the newest model of each clip's group; saved as a new model."""
    progress = progress or Progress()
    project = session.project
    clips = refresh_changed(project, [project.clip(clip_id) for clip_id in clip_ids], progress, session.cache)
    latest = results.latest_models(project, detector)
    updated = []
    for key, group_clips in groups_of(clips).items():
        if key not in latest:
            raise EarmarkError(
                f"no fitted {detector} model for {key}; run `earmark fit {project.folder} --detector {detector}` first"
            )
        # A fresh copy: enrolling changes the model, and the loaded one must stay as its record says.
        model = load_model(results.model_folder(project, latest[key]), cache=session.cache, device=session.device)
        model.enrol(group_clips, progress.child(f"{detector} {key}: "))
        record = save_model(project, model, key, {"enrolled_into": latest[key].model_id})
        updated.append(_carry_threshold(project, latest[key], record))
    return updated


def _carry_threshold(
    project: Project, old: results.ModelRecord, new: results.ModelRecord, by_value: bool = True
) -> results.ModelRecord:
    """The threshold a user set on a group's model decides for the model that replaces it (an enrolment, a
    refit): one chosen by a false-positive rate is chosen again by that rate from the new held-out scores, one
    set by value keeps its value where `by_value` (an enrolment; a refit with the same settings). A refit with
    other settings may score on another scale, so a value set for the old one is not carried: the new model's
    fitted threshold decides, as `earmark fit` and the window's figures show. Without this the fitted
    threshold would silently come back."""
    if old.adjusted_threshold is None:
        return new
    if old.threshold_set_by == "fpr" and old.threshold_fpr is not None:
        try:
            value = thresholds.threshold_for_fpr(project, new.model_id, old.threshold_fpr)
        except EarmarkError:  # a model that keeps no held-out scores: its fitted threshold decides
            return new
        thresholds.set_threshold(project, new.model_id, value, set_by="fpr", fpr=old.threshold_fpr)
    elif by_value:
        thresholds.set_threshold(project, new.model_id, old.adjusted_threshold)
    else:
        return new
    return results.model(project, new.model_id) or new


def score(
    session: Session,
    detector: str,
    split: str | None = "test",
    group: str | None = None,
    progress: Progress | None = None,
    clips: Sequence[Clip] | None = None,
) -> ScoreRun:
    """Score the clips of `split` (or the given clips) with the newest model of their group, store the
    scores and each clip's frame scores, and write `scores.csv` and `metrics.json` for the run."""
    progress = progress or Progress()
    project = session.project
    detector_class(detector)  # an unknown name fails here, before any work
    latest = results.latest_models(project, detector)
    if not latest:
        raise EarmarkError(
            f"no fitted {detector} model in {project.folder}; run "
            f"`earmark fit {project.folder} --detector {detector}` first"
        )
    if clips is None:
        clips = project.clips(split=split) if split else project.clips()
    clips = refresh_changed(project, clips, progress, session.cache)
    grouped = groups_of(clips)
    if group is not None:
        grouped = {group: grouped[group]} if group in grouped else {}
    if not grouped:
        what = f"{split} clips" if split else "clips"
        where = f" in group {group!r}" if group else ""
        raise EarmarkError(f"no {what} to score{where}; `earmark info {project.folder}` lists what the project holds")
    detections: list[Detection] = []
    scored_groups = []
    for index, (key, group_clips) in enumerate(grouped.items()):
        record = results.model_for_group(latest, key)
        if record is None:
            progress.problem(f"{key}: {len(group_clips)} clip(s) not scored, no fitted {detector} model for this group")
            continue
        step = progress.child(f"{detector} {key} ({index + 1}/{len(grouped)}): ", index, len(grouped))
        try:
            model = load(session, record)
        except ArtifactError as exc:  # the other groups' models may be sound: name this one and go on
            progress.problem(f"{key}: {len(group_clips)} clip(s) not scored, {exc}")
            continue
        found = model.score(group_clips, step)
        _store(project, record.model_id, group_clips, found)
        detections += found
        scored_groups.append(key)
    if not detections:
        said = progress.problems[:3] + (
            [f"and {len(progress.problems) - 3} more"] if len(progress.problems) > 3 else []
        )
        raise EarmarkError(f"no clip could be scored with {detector}: {'; '.join(said) or 'no clip was readable'}")
    folder = _write_run(project, detector, {d.clip_id: d for d in detections}, clips)
    return ScoreRun(detector, len(detections), scored_groups, folder, detections)


def score_with_group(
    session: Session,
    group: str,
    clips: Sequence[Clip],
    progress: Progress | None = None,
) -> dict[str, dict[str, Detection]]:
    """Score `clips` with the newest model of every detector fitted for `group`, whatever their own group
    (files dropped on the window have none), all clips in one call per model; store the scores. Returns
    clip_id -> detector -> detection for every clip scored (a clip no model could read is absent)."""
    progress = progress or Progress()
    project = session.project
    clips = refresh_changed(project, clips, progress, session.cache)
    found: dict[str, dict[str, Detection]] = {}
    records = {
        d: results.model_for_group(results.latest_models(project, d), group) for d in results.fitted_detectors(project)
    }
    detectors = [d for d, record in records.items() if record is not None]
    if not detectors:
        raise EarmarkError(f"no detector is fitted for {group}; fit one (Train > Fit all detectors) first")
    for index, detector in enumerate(detectors):
        record = records[detector]
        step = progress.child(f"{detector} ({index + 1}/{len(detectors)}): ")
        try:
            model = session.model(record)
        except ArtifactError as exc:
            progress.problem(f"{detector}: not scored, {exc}")
            continue
        detections = model.score(clips, step)
        _store(project, record.model_id, clips, detections)
        for detection in detections:
            found.setdefault(detection.clip_id, {})[detector] = detection
    return found


def _store(project: Project, model_id: int, clips: Sequence[Clip], detections: Sequence[Detection]) -> None:
    checksums = {c.clip_id: c.checksum or c.clip_id for c in clips}
    rows = [
        (d.clip_id, d.score, d.decision, results.save_lanes(project, model_id, checksums[d.clip_id], d), d.normalised)
        for d in detections
    ]
    results.write_scores(project, model_id, rows)


def _write_run(project: Project, detector: str, detections: dict[str, Detection], clips: Sequence[Clip]) -> Path:
    from engine.evaluation.report import evaluate_rows

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = project.artifacts / "runs" / detector / stamp
    scored = [c for c in clips if c.clip_id in detections]
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(
        ["clip_id", "file", "machine_type", "section_id", "domain", "split", "label", "score", "decision", "normalised"]
    )
    for clip in scored:
        d = detections[clip.clip_id]
        writer.writerow(
            [
                *map(
                    cell,
                    (
                        clip.clip_id,
                        Path(clip.path).name,
                        clip.machine_type,
                        clip.section_id,
                        clip.domain,
                        clip.split,
                        clip.label or "",
                    ),
                ),
                f"{d.score:.6g}",
                int(d.decision),
                "" if math.isnan(d.normalised) else f"{d.normalised:.4g}",
            ]
        )
    report = evaluate_rows(detector, [(c, detections[c.clip_id].score, detections[c.clip_id].decision) for c in scored])
    # Written into a temporary folder renamed when complete: a run folder is whole or absent, even after a kill
    # (a temporary one left by a kill is removed when the project opens).
    partial = folder.with_name(f".run.{uuid.uuid4().hex[:8]}.part")
    try:
        write_text_atomic(partial / "scores.csv", table.getvalue())
        write_text_atomic(partial / "metrics.json", json.dumps(report.as_dict(), indent=2))
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder
