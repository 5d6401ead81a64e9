"""Noticing a recording that changed on disk after import, and reading it again.

Fitting and scoring compare each clip's file size and modification time with those recorded when it was
last read (one `stat` per clip). A file whose stamp differs but whose content does not (touched, copied
back) just gets the new stamp; one whose content changed is decoded again: its new checksum, length, format
and QA figures are stored, the features cached for its old content are deleted, the scores computed from
its old content are dropped, and it is named in the run's report.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from engine.audio.feature_cache import FeatureCache
from engine.audio.io import file_checksum, scan
from engine.data.clip import Clip
from engine.errors import AudioError
from engine.jobs import Progress
from engine.store.clip_fields import mark_stale, used_for_fitting
from engine.store.clip_files import FileStamp, record_reread, record_stamps
from engine.store.project import Project


def refresh_changed(
    project: Project, clips: Sequence[Clip], progress: Progress | None = None, cache: FeatureCache | None = None
) -> list[Clip]:
    """`clips` as their files are now: a changed file is read again and its clip returned as re-read, one
    that changed into something unreadable is named and left out. A missing file is kept (its features may be
    cached, and the loader names it where they are not), and one line says how many are missing and how to
    re-point them. A clip recorded before stamps were kept is checked by its checksum once."""
    progress = progress or Progress()
    refreshed: list[Clip] = []
    missing: list[str] = []
    touched: list[tuple[str, FileStamp]] = []  # same content, new stamp: written in one transaction below
    for clip in clips:
        try:
            stamp = FileStamp.of(clip.path)
        except OSError:
            missing.append(Path(clip.path).name)
            refreshed.append(clip)
            continue
        if stamp != FileStamp(clip.file_size, clip.file_mtime):  # changed, or never stamped (older projects)
            again = reread(project, clip, stamp, progress, cache, touched)
            if again is not None:
                refreshed.append(again)
        else:
            refreshed.append(clip)
    record_stamps(project, touched)
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        progress.problem(
            f"{len(missing)} recording(s) not found where they were imported ({named}); clips "
            "whose features are cached are still used. Re-point moved files with `earmark relocate "
            "PROJECT OLD_PREFIX NEW_PREFIX` or File > Locate missing recordings..."
        )
    return refreshed


def reread(
    project: Project,
    clip: Clip,
    stamp: FileStamp,
    progress: Progress,
    cache: FeatureCache | None = None,
    touched: list[tuple[str, FileStamp]] | None = None,
) -> Clip | None:
    """Read a clip's file again after its stamp changed; the clip as it is now, or None (named) when the file
    can no longer be used. A file only touched (same checksum) gets its new stamp, or has it added to
    `touched` for the caller to write with others."""
    name = Path(clip.path).name
    try:
        checksum = file_checksum(clip.path)
        if checksum == clip.checksum:  # touched, not changed: nothing computed from it is stale
            if touched is None:
                record_stamps(project, [(clip.clip_id, stamp)])
            else:
                touched.append((clip.clip_id, stamp))
            return dataclasses.replace(clip, file_size=stamp.size, file_mtime=stamp.mtime)
        info, qa = scan(clip.path)
    except AudioError as exc:
        progress.problem(
            f"{clip.clip_id}: skipped, {name} changed on disk after import and cannot be read now ({exc.reason})"
        )
        return None
    except OSError as exc:
        progress.problem(f"{clip.clip_id}: skipped, {name} cannot be read ({exc.strerror or exc})")
        return None
    if clip.channel is not None and clip.channel >= info.channels:
        progress.problem(
            f"{clip.clip_id}: skipped, {name} changed on disk and now has {info.channels} "
            f"channel(s); channel {clip.channel + 1} is gone"
        )
        return None
    try:
        record_reread(project, clip.clip_id, checksum, info, qa, stamp)
    except sqlite3.IntegrityError:  # the checksum is unique: another clip already holds this content
        progress.problem(
            f"{clip.clip_id}: skipped, {name} changed on disk and now holds the same audio as "
            "another clip of the project"
        )
        return None
    if cache is not None:
        cache.drop(clip.checksum)
    if used_for_fitting(clip.split, clip.label):  # models fitted on its old content describe audio that is gone
        mark_stale(project, {clip.group})
    progress.problem(
        f"{clip.clip_id}: re-read changed file {name} (changed on disk after import: "
        f"{info.duration_s:.2f} s now; its features are computed again)"
    )
    return dataclasses.replace(
        clip,
        checksum=checksum,
        format=info.format_name,
        channels=info.channels,
        sample_rate=info.sample_rate,
        duration_s=info.duration_s,
        qa=qa,
        file_size=stamp.size,
        file_mtime=stamp.mtime,
    )
