"""Reads what the window shows from the project (on the GUI thread, with its own connection): the clip
table's rows and, for one clip, everything drawn over its spectrogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.views.clip_columns import ClipColumns
from app.views.overlays import ClipDisplay, DetectorLanes
from engine.data.clip import Clip
from engine.errors import ArtifactError
from engine.store import Project, results


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
        lanes = _lanes(project, score.map_artifact, f"{detector} (model {score.model_id})", display.problems)
        display.lanes[detector] = DetectorLanes(
            detector,
            score.score,
            score.decision,
            record.threshold if record else None,
            lanes.get("frame_times", np.zeros(0)),
            lanes.get("frame_scores", np.zeros(0)),
            results.frame_threshold(project, record) if record else None,
            lanes.get("anomaly_map"),
            lanes.get("map_freq_spans_hz"),
            lanes.get("map_time_spans_s"),
            score.model_id,
        )
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


def audio_caption(clip: Clip) -> str:
    """The sample rate and which audio is used: "16000 Hz, mono", "48000 Hz, channel 2 of 4",
    "44100 Hz, mono mix of 2 channels"."""
    return f"{clip.sample_rate} Hz, {clip.channel_caption or 'mono'}"


def _lanes(project: Project, artifact: str | None, source: str, problems: list[str]) -> dict[str, np.ndarray]:
    """The stored lanes; a missing or damaged file gives none (the score is shown without them) and a line
    in `problems`."""
    if not artifact:
        return {}
    try:
        return results.load_lanes(project, artifact)
    except ArtifactError as exc:
        problems.append(f"{source}: {exc}")
        return {}
