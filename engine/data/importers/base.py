"""What every importer shares: the candidate record, the report, and the one routine that checks each
file and writes the clips into the project.

An importer only *collects* candidates (paths plus metadata) and the problems it met reading its own
metadata. `add_candidates` then checksums each file, skips what the project already holds, decodes and
measures the rest, and writes them in transactions of a few hundred clips; a bad file becomes a problem in
the report and the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from engine.audio.io import AUDIO_EXTENSIONS, file_checksum, scan
from engine.data.clip import Clip
from engine.data.qa_flags import qa_flags
from engine.errors import AudioError, EarmarkError
from engine.jobs import Progress
from engine.store.clip_files import FileStamp, paths_by_checksum, repoint
from engine.store.project import Project

BATCH = 256

NORMAL_NAMES = {"normal", "ok", "good", "healthy"}
ANOMALY_NAMES = {"anomaly", "anomalous", "abnormal", "faulty", "fault", "bad", "defect"}


@dataclass
class Candidate:
    """A file an importer found, with the metadata it could read for it."""

    path: Path
    clip_id: str
    machine_type: str | None = None
    section_id: str | None = None
    domain: str | None = None
    split: str | None = None
    label: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    anomaly_regions: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ImportProblem:
    """Something that was not imported: the file or row, and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ImportReport:
    format: str
    source: str
    added: int = 0
    already_present: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    #: The project's clip for each file that was added or already present, in the order of the files.
    clip_ids: list[str] = field(default_factory=list)
    #: What a data set's own check found (metadata rows against files on disk), a line each.
    checks: list[str] = field(default_factory=list)
    #: Clips the project held under a path that no longer exists, now pointed at the file found here.
    repointed: int = 0
    #: QA flag ("too short", "silent", "clipped") -> the files added with it.
    flagged: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"Imported {self.added} clip(s) from {self.source} ({self.format}); "
            f"{self.already_present} already in the project; {len(self.problems)} problem(s)."
        ]
        if self.repointed:
            out[0] += f" {self.repointed} moved clip(s) re-pointed."
        out += [f"  {line}" for line in self.checks]
        out += [f"  QA {flag}: {len(names)} clip(s): {_names(names)}" for flag, names in self.flagged.items()]
        out += [f"  skipped {problem}" for problem in self.problems]
        return out


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def add_candidates(
    project: Project,
    candidates: list[Candidate],
    report: ImportReport,
    progress: Progress | None = None,
    source: str | None = None,
    channel: int | None = None,
) -> ImportReport:
    """Check, measure and write candidates into the project; fills in `report` and returns it. `source`
    (default: the report's format) is recorded with each clip; files dropped on the window say "inbox".
    `channel` (0-based) reads each multi-channel file as that channel instead of the mono mix.

    A file the project holds (same checksum) is not added again; if the clip's recorded file no longer
    exists, the clip is pointed at this one (the folder was moved)."""
    source = source or report.format
    progress = progress or Progress()
    held = paths_by_checksum(project)
    known_checksums = {checksum: clip_id for checksum, (clip_id, _) in held.items()}
    taken_ids = project.clip_ids()
    total = len(candidates)
    progress.update(0, total, "checking files")
    pending: list[Clip] = []
    moves: list[tuple[str, str, FileStamp]] = []
    workers = max(1, min(4, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = pool.map(partial(_inspect, known=frozenset(known_checksums)), candidates)
        for done, (candidate, result) in enumerate(zip(candidates, results, strict=True), start=1):
            if isinstance(result, ImportProblem):
                report.problems.append(result)
            else:
                checksum, info, qa, stamp = result
                if checksum in known_checksums:  # held before, or seen earlier in this batch
                    report.already_present += 1
                    report.clip_ids.append(known_checksums[checksum])
                    if checksum in held and _moved(held[checksum][1], candidate.path):
                        moves.append((held[checksum][0], str(candidate.path.resolve()), stamp))
                        del held[checksum]
                else:
                    clip_id = candidate.clip_id
                    if clip_id in taken_ids:
                        clip_id = f"{clip_id}~{checksum[:8]}"
                    try:
                        clip = _clip(candidate, clip_id, checksum, info, qa, stamp, channel)
                    except ValueError as exc:
                        report.problems.append(ImportProblem(str(candidate.path), str(exc)))
                    else:
                        pending.append(clip)
                        known_checksums[checksum] = clip_id
                        taken_ids.add(clip_id)
                        report.clip_ids.append(clip_id)
                        for flag in qa_flags(clip.duration_s, qa):
                            report.flagged.setdefault(flag, []).append(candidate.path.name)
            if len(pending) >= BATCH:
                _write(project, pending, source, report)
                pending = []
            progress.update(done, total, candidate.path.name)
    except BaseException:  # cancelled, interrupted or failed: don't check the files still queued
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        # Clips already checked are kept, also when the user cancels: a later import skips them.
        if pending:
            _write(project, pending, source, report)
        if moves:
            report.repointed += repoint(project, moves)
        pool.shutdown(wait=True)
    return report


def _write(project: Project, pending: list[Clip], source: str, report: ImportReport) -> None:
    """One batch of new clips into the project. Files that another import (another process) added after
    this one looked are left as that import wrote them: counted as already present, under its clip ids."""
    added = project.add_clips(pending, source)
    report.added += added
    if added < len(pending):
        report.already_present += len(pending) - added
        holders = project.held_checksums(clip.checksum for clip in pending)
        renamed = {clip.clip_id: holders[clip.checksum] for clip in pending if holders[clip.checksum] != clip.clip_id}
        report.clip_ids = [renamed.get(clip_id, clip_id) for clip_id in report.clip_ids]


def _moved(recorded: str, found: Path) -> bool:
    """The clip's recorded file is gone and the same content turned up here: the recording was moved."""
    return not os.path.exists(recorded) and os.path.abspath(recorded) != str(found.resolve())


def _inspect(candidate: Candidate, known: frozenset[str]):
    """(checksum, info, qa, stamp) of a file, (checksum, None, None, stamp) for one the project holds, or
    the problem."""
    try:
        stamp = FileStamp.of(candidate.path)
        checksum = file_checksum(candidate.path)
        if checksum in known:
            return checksum, None, None, stamp
        info, qa = scan(candidate.path)
    except AudioError as exc:
        return ImportProblem(str(candidate.path), exc.reason)
    except OSError as exc:
        return ImportProblem(str(candidate.path), f"cannot be read ({exc.strerror or exc})")
    return checksum, info, qa, stamp


def _clip(
    candidate: Candidate, clip_id: str, checksum: str, info, qa, stamp: FileStamp, channel: int | None = None
) -> Clip:
    if channel is not None and info.channels == 1:
        channel = None  # a mono file has only the one channel: nothing to choose
    elif channel is not None and channel >= info.channels:
        raise ValueError(f"has {info.channels} channel(s); channel {channel + 1} does not exist")
    duration = info.duration_s
    regions = [(max(0.0, s), min(duration, e)) for s, e in candidate.anomaly_regions]
    return Clip(
        clip_id=clip_id,
        path=str(candidate.path.resolve()),
        sample_rate=info.sample_rate,
        duration_s=duration,
        machine_type=candidate.machine_type,
        section_id=candidate.section_id,
        domain=candidate.domain,
        split=candidate.split,
        label=candidate.label,
        attributes=candidate.attributes,
        anomaly_regions=tuple((s, e) for s, e in regions if e > s),
        qa=qa,
        checksum=checksum,
        channels=info.channels,
        format=info.format_name,
        channel=channel,
        file_size=stamp.size,
        file_mtime=stamp.mtime,
    )


def audio_files(root: Path) -> Iterator[Path]:
    """Audio files below a folder, in a stable order."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS and not name.startswith("."):
                yield Path(directory) / name


def normalise_section(value: str | int | None) -> str | None:
    """Section ids are kept as in DCASE file names: two digits ("00"); other ids are kept as given."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.lower().startswith("section_"):
        text = text[len("section_") :]
    return f"{int(text):02d}" if text.isdigit() else text


def label_from_name(name: str) -> str | None:
    lowered = name.strip().lower()
    if lowered in NORMAL_NAMES:
        return "normal"
    if lowered in ANOMALY_NAMES:
        return "anomaly"
    return None


def require_folder(source: Path) -> None:
    if not source.exists():
        raise EarmarkError(f"{source} does not exist")
    if not source.is_dir():
        raise EarmarkError(
            f"{source} is a file, not a folder; import single files with `earmark import PROJECT FILE ...`"
        )
