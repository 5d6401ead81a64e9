"""Where a clip's file is and what it held when last read: re-pointing moved files, recording re-read ones.

A clip row keeps the file's path, checksum, size and modification time. These are the only writes that
change them after import; the callers (`engine.store.relocate`, `engine.data.changes`, the importers) decide
what changed and why.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.audio.io import QA, AudioInfo
from engine.store import results
from engine.store.project import Project


@dataclass(frozen=True)
class FileStamp:
    """A file's size in bytes and modification time, as `os.stat` gives them."""

    size: int
    mtime: float

    @classmethod
    def of(cls, path: str | Path) -> FileStamp:
        """Raises OSError when the file cannot be reached."""
        status = os.stat(path)
        return cls(int(status.st_size), float(status.st_mtime))


def paths_by_checksum(project: Project) -> dict[str, tuple[str, str]]:
    """checksum -> (clip_id, path) of every clip in the project."""
    return {
        checksum: (clip_id, path)
        for checksum, clip_id, path in project.db.execute("SELECT checksum, clip_id, path FROM clips")
    }


def repoint(project: Project, moves: Iterable[tuple[str, str, FileStamp]]) -> int:
    """Point clips at their files' new places: (clip_id, new absolute path, the file's stamp), one
    transaction. Returns how many clips changed."""
    rows = [(path, stamp.size, stamp.mtime, clip_id) for clip_id, path, stamp in moves]
    db = project.db
    with db.atomic():
        db.conn.executemany("UPDATE clips SET path = ?, file_size = ?, file_mtime = ? WHERE clip_id = ?", rows)
    return len(rows)


def record_stamps(project: Project, stamps: Iterable[tuple[str, FileStamp]]) -> None:
    """Remember the size and modification time of files whose content is as recorded (clip_id, stamp)."""
    rows = [(stamp.size, stamp.mtime, clip_id) for clip_id, stamp in stamps]
    if rows:
        db = project.db
        with db.atomic():
            db.conn.executemany("UPDATE clips SET file_size = ?, file_mtime = ? WHERE clip_id = ?", rows)


def record_reread(project: Project, clip_id: str, checksum: str, info: AudioInfo, qa: QA, stamp: FileStamp) -> None:
    """A file that changed on disk was read again: its new checksum, format, length, QA figures and stamp."""
    db = project.db
    lanes = [
        artifact
        for (artifact,) in db.execute("SELECT map_artifact FROM scores WHERE clip_id = ?", [clip_id])
        if artifact
    ]
    with db.atomic():
        db.execute(
            "UPDATE clips SET checksum = ?, format = ?, channels = ?, sample_rate = ?, duration_s = ?, "
            "qa_rms = ?, qa_peak = ?, qa_clipping_ratio = ?, qa_silence_ratio = ?, file_size = ?, "
            "file_mtime = ? WHERE clip_id = ?",
            [
                checksum,
                info.format_name,
                info.channels,
                info.sample_rate,
                info.duration_s,
                qa.rms,
                qa.peak,
                qa.clipping_ratio,
                qa.silence_ratio,
                stamp.size,
                stamp.mtime,
                clip_id,
            ],
        )
        # Scores computed from the old content would stand beside the new one unmarked: they go.
        db.execute("DELETE FROM scores WHERE clip_id = ?", [clip_id])
    for artifact in lanes:  # their lanes and maps go with them (after the commit: a failed write keeps both)
        results.remove_artifact(project, artifact)
