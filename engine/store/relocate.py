"""Re-pointing clips whose recordings moved: by path prefix (`earmark relocate`) or by searching a folder
(File > Locate missing recordings...). Every new file's checksum is checked against the clip's before the
clip is pointed at it, so a different recording under the same name is never taken for the old one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.audio.io import AUDIO_EXTENSIONS, file_checksum
from engine.data.clip import Clip
from engine.errors import EarmarkError
from engine.jobs import Progress
from engine.store.clip_files import FileStamp, repoint
from engine.store.project import Project


@dataclass
class RelocateReport:
    """What a re-pointing did: clips moved, already in place, and those left as they were (with why)."""

    repointed: int = 0
    in_place: int = 0
    #: (clip_id, the file looked at) whose content differs from the clip's.
    mismatched: list[tuple[str, str]] = field(default_factory=list)
    #: (clip_id, where it was looked for) with no file there.
    missing: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"Re-pointed {self.repointed} clip(s); {self.in_place} already in place; {len(self.mismatched)} "
            f"with different content (left as they were); {len(self.missing)} not found."
        ]
        out += [
            f"  different content: {clip_id}: {path} (checksum differs; not re-pointed)"
            for clip_id, path in self.mismatched
        ]
        out += [f"  not found: {clip_id}: {path}" for clip_id, path in self.missing]
        return out


def relocate(
    project: Project, old_prefix: str | Path, new_prefix: str | Path, progress: Progress | None = None
) -> RelocateReport:
    """Point every clip whose path lies under `old_prefix` at the same relative path under `new_prefix`,
    if the file there has the clip's checksum."""
    progress = progress or Progress()
    old = _folder_text(old_prefix)
    new = Path(new_prefix).expanduser().resolve()
    if not new.is_dir():
        raise EarmarkError(f"{new_prefix} is not a folder; give the folder the recordings were moved to")
    clips = _under(project.clips(), old)
    if not clips and os.path.realpath(old) != old:  # paths were stored with symbolic links resolved
        old = os.path.realpath(old)
        clips = _under(project.clips(), old)
    if not clips:
        raise EarmarkError(
            f"no clip of {project.folder} lies under {old}; `earmark info` lists the project's "
            "clips, and their paths are in the clip table"
        )
    targets = {c.clip_id: new / os.path.relpath(c.path, old) for c in clips}
    return _verify_and_repoint(project, clips, targets, progress)


def missing_clips(project: Project) -> list[Clip]:
    """Clips whose recorded file does not exist (one stat per clip)."""
    return [c for c in project.clips() if not os.path.exists(c.path)]


def locate_missing(
    project: Project, folder: str | Path, clip_ids: Sequence[str] | None = None, progress: Progress | None = None
) -> RelocateReport:
    """Look for the missing recordings (or just `clip_ids`) below `folder`, by file name, preferring the
    candidate whose path ends like the clip's old path; re-point those whose checksum matches."""
    progress = progress or Progress()
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise EarmarkError(f"{folder} is not a folder; choose the folder the recordings were moved to")
    wanted = set(clip_ids) if clip_ids is not None else None
    clips = [c for c in missing_clips(project) if wanted is None or c.clip_id in wanted]
    if not clips:  # nothing to look for: no walk through what may be a whole disk
        return RelocateReport()
    by_name: dict[str, list[Path]] = {}
    progress.update(0, max(len(clips), 1), f"looking through {root}")
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                by_name.setdefault(name, []).append(Path(directory) / name)
    targets: dict[str, Path] = {}
    report = RelocateReport()
    found = []
    for clip in clips:
        candidates = by_name.get(Path(clip.path).name, [])
        if not candidates:
            report.missing.append((clip.clip_id, f"{Path(clip.path).name} below {root}"))
            continue
        targets[clip.clip_id] = max(candidates, key=lambda p: _common_tail(p, Path(clip.path)))
        found.append(clip)
    verified = _verify_and_repoint(project, found, targets, progress)
    verified.missing = report.missing + verified.missing
    return verified


def _verify_and_repoint(
    project: Project, clips: Sequence[Clip], targets: dict[str, Path], progress: Progress
) -> RelocateReport:
    report = RelocateReport()
    moves = []
    for done, clip in enumerate(clips, start=1):
        target = targets[clip.clip_id]
        progress.update(done - 1, len(clips), f"checking {target.name}")
        if str(target) == clip.path and target.is_file():
            report.in_place += 1
            continue
        try:
            stamp = FileStamp.of(target)
            checksum = file_checksum(target)
        except OSError:
            report.missing.append((clip.clip_id, str(target)))
            continue
        if checksum != clip.checksum:
            report.mismatched.append((clip.clip_id, str(target)))
            continue
        moves.append((clip.clip_id, str(target), stamp))
    report.repointed = repoint(project, moves)
    progress.update(len(clips), len(clips), f"re-pointed {report.repointed} clip(s)")
    return report


def _under(clips: Sequence[Clip], folder: str) -> list[Clip]:
    return [c for c in clips if c.path == folder or c.path.startswith(folder.rstrip(os.sep) + os.sep)]


def _folder_text(prefix: str | Path) -> str:
    """An absolute prefix as clip paths are stored (paths are resolved at import); the folder need not exist."""
    return os.path.abspath(os.path.expanduser(str(prefix)))


def _common_tail(a: Path, b: Path) -> int:
    """How many trailing path components two paths share."""
    shared = 0
    for x, y in zip(reversed(a.parts), reversed(b.parts), strict=False):
        if x != y:
            break
        shared += 1
    return shared
