"""Reads what the window shows from the project (on the GUI thread, with its own connection): the clip
table's rows and, for one clip, everything drawn over its spectrogram."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.views.clip_columns import ClipColumns
from app.views.overlays import ClipDisplay
from engine.data.clip import Clip
from engine.data.detection import Detection
from engine.detectors.normalisation import normalised_frames, normalised_score
from engine.errors import ArtifactError
from engine.store import Project, results
from engine.store.thresholds import effective_threshold


def table_rows(project: Project, clip_ids: list[str] | None = None) -> ClipColumns:
    """The clip table's rows: every clip, or these clips (to update their rows in place). Read column-wise
    (one query for the clips, one for the scores): a `ClipRow` is built only for a row someone asks for."""
    return ClipColumns.read(project, clip_ids)


def fitted_groups(project: Project) -> list[str]:
    """Groups with at least one fitted model: what dropped files can be scored with."""
    return sorted({m.group_key for m in results.models(project)})


def clip_display(project: Project, clip_id: str) -> ClipDisplay:
    clip = project.clip(clip_id)
    # Labelled regions are added by the window's refresh_regions.
    display = ClipDisplay(
        clip_id,
        clip.path,
        Path(clip.path).name,
        clip.duration_s,
        clip.sample_rate,
        truth=list(clip.anomaly_regions),
        channel=clip.channel,
    )
    records = {m.model_id: m for m in results.models(project)}
    for detector, score in results.clip_scores(project, clip_id).get(clip_id, {}).items():
        record = records.get(score.model_id)
        fields = {
            "score": score.score,
            "decision": score.decision,
            "normalised": math.nan if score.normalised is None else score.normalised,
            "threshold": effective_threshold(record) if record else None,
            "frame_threshold": results.frame_threshold(project, record) if record else None,
            "model_id": score.model_id,
        }
        detection = _lanes(
            project, score.map_artifact, clip_id, fields, f"{detector} (model {score.model_id})", display.problems
        )
        display.lanes[detector] = detection
        normalised = normalised_detection(detection, _saved_info(project, record), clip.domain) if record else None
        if normalised is not None:
            display.normalised[detector] = normalised
    parts = [
        clip.machine_type,
        f"section {clip.section_id}" if clip.section_id else None,
        clip.domain,
        clip.split,
        clip.label,
    ]
    display.caption = (
        f"{display.name}  ({', '.join(p for p in parts if p) or 'no metadata'}, "
        f"{clip.duration_s:.1f} s, {audio_caption(clip)})"
    )
    return display


def normalised_detection(detection: Detection, info: dict, domain: str | None) -> Detection | None:
    """The detection on the normalised scale of `engine.detectors.normalisation` (what side by side shows, so
    that detectors on different scales compare): the clip score and threshold against the model's held-out
    clip scores of the clip's domain, the frame lane, map and frame threshold against its held-out frame
    scores. None for a model without those statistics (one saved before they were kept, a classifier)."""
    frames, clips = info.get("frame_normalisation"), info.get("normalisation")
    if not frames or not clips or not np.isfinite(detection.normalised):
        return None

    def scaled(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else normalised_frames(values, frames)

    return replace(
        detection,
        score=detection.normalised,
        threshold=None if detection.threshold is None else normalised_score(detection.threshold, domain, clips),
        frame_scores=scaled(detection.frame_scores),
        anomaly_map=scaled(detection.anomaly_map),
        frame_threshold=None
        if detection.frame_threshold is None
        else float(scaled(np.float32(detection.frame_threshold))),
        regions=[],
    )


def audio_caption(clip: Clip) -> str:
    """The sample rate and which audio is used: "16000 Hz, mono", "48000 Hz, channel 2 of 4",
    "44100 Hz, mono mix of 2 channels"."""
    return f"{clip.sample_rate} Hz, {clip.channel_caption or 'mono'}"


def _lanes(
    project: Project, artifact: str | None, clip_id: str, fields: dict, source: str, problems: list[str]
) -> Detection:
    """The stored detection; a missing or damaged lanes file gives one without lanes (the score is shown
    without them) and a line in `problems`."""
    if artifact:
        try:
            return results.load_lanes(project, artifact, clip_id, **fields)
        except ArtifactError as exc:
            problems.append(f"{source}: {exc}")
    return Detection.from_arrays({}, clip_id, **fields)


def _saved_info(project: Project, record: results.ModelRecord) -> dict:
    """What a model says about how it was fitted (model.json's "info": normalisation statistics, ...); {} when
    unreadable."""
    try:
        return _read_info(str(results.model_folder(project, record) / "model.json"))
    except ArtifactError:
        return {}


@lru_cache(maxsize=1024)
def _read_info(path: str) -> dict:
    # A saved model never changes: read once per model (the window asks on every clip it shows).
    try:
        info = json.loads(Path(path).read_text()).get("info")
    except (OSError, ValueError, AttributeError):
        return {}
    return info if isinstance(info, dict) else {}
