"""Importers: read a data set's layout and metadata, then add its clips to a project.

`import_source(project, source)` detects the layout (or takes `fmt`), `import_files` takes a list of files.
Both are idempotent (a clip whose checksum the project holds is skipped) and report every bad file or row by
name while importing the rest. Both take `defaults` ({"machine": "pump", "split": "train", ...}): they fill
the fields a file's own metadata (its folders, its DCASE name, metadata.csv) left empty, and never override it:
a file in `anomaly/` stays an anomaly under `--label normal`. Clips already in the project are not changed
(`earmark set` changes them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from engine.data.clip import SPLITS
from engine.data.importers import dcase, emodb, esc50, folder, metadata_csv
from engine.data.importers.base import (
    Candidate,
    ImportProblem,
    ImportReport,
    add_candidates,
    audio_files,
    require_folder,
)
from engine.errors import EarmarkError
from engine.jobs import Progress
from engine.store.project import Project

Collector = Callable[[Path], tuple[list[Candidate], list[ImportProblem]]]
FORMATS: dict[str, Collector] = {
    "metadata": metadata_csv.collect,
    "dcase": dcase.collect,
    "esc50": esc50.collect,
    "emodb": emodb.collect,
    "folder": folder.collect,
}
#: Data sets whose metadata is checked against the files on disk; the check's lines go into the report.
VERIFIERS = {"esc50": esc50.verification, "emodb": emodb.verification}


def detect_format(source: Path) -> str:
    """metadata if there is a metadata.csv, esc50 if there is meta/esc50.csv, emodb if every file has an EmoDB
    name, dcase if audio sits in <machine>/<split>/ folders, else folder."""
    if source.is_file() and source.suffix.lower() == ".csv":
        return "metadata"
    require_folder(source)
    if (source / metadata_csv.METADATA_NAME).is_file():
        return "metadata"
    if esc50.is_esc50(source):
        return "esc50"
    if emodb.is_emodb(source):
        return "emodb"
    for path in audio_files(source):
        if path.parent.name in SPLITS and dcase.parse_name(path.stem) is not None:
            return "dcase"
    return "folder"


def import_source(
    project: Project,
    source: str | Path,
    fmt: str | None = None,
    progress: Progress | None = None,
    defaults: Mapping[str, str | None] | None = None,
    *,
    channel: int | None = None,
) -> ImportReport:
    """`defaults` fill fields the files' own metadata leaves empty; `channel` (0-based): read multi-channel
    files as that channel instead of the mono mix."""
    source = Path(source)
    columns = _checked_defaults(defaults)
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise EarmarkError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    candidates, problems = FORMATS[fmt](source)
    candidates = fill_defaults(candidates, columns)
    report = ImportReport(format=fmt, source=str(source), problems=list(problems))
    if fmt in VERIFIERS:
        report.checks = VERIFIERS[fmt](candidates, problems)
    return _adding(project, lambda: add_candidates(project, candidates, report, progress, channel=channel), report)


def import_files(
    project: Project,
    paths: Iterable[str | Path],
    progress: Progress | None = None,
    source: str = "files",
    defaults: Mapping[str, str | None] | None = None,
    *,
    channel: int | None = None,
) -> ImportReport:
    """Add single files. `source` is recorded with each clip: "inbox" for files dropped on the window;
    `channel` (0-based) reads multi-channel files as that channel instead of the mono mix."""
    paths = list(paths)
    columns = _checked_defaults(defaults)
    candidates, problems = folder.collect_files(paths)
    candidates = fill_defaults(candidates, columns)
    report = ImportReport(format="files", source=f"{len(paths)} file(s)", problems=list(problems))
    return _adding(
        project, lambda: add_candidates(project, candidates, report, progress, source, channel=channel), report
    )


def _adding(project: Project, add: Callable[[], ImportReport], report: ImportReport) -> ImportReport:
    """Run `add`; new training clips in fitted groups make those groups' models stale (also when the import
    was cancelled half-way: the clips written so far stay)."""
    from engine.store.clip_fields import clips_added

    known = project.clip_ids()
    try:
        return add()
    finally:
        clips_added(project, [clip_id for clip_id in report.clip_ids if clip_id not in known])


def _checked_defaults(defaults: Mapping[str, str | None] | None) -> dict[str, str]:
    """{field: value} checked (before any file is read) as {Candidate attribute: value}; empty ones dropped."""
    from engine.store.clip_fields import normalise_values

    return {column: value for column, value in normalise_values(defaults or {}).items() if value is not None}


def fill_defaults(candidates: list[Candidate], columns: Mapping[str, str]) -> list[Candidate]:
    """Candidates with `columns` filled in where their own metadata left them empty."""
    if not columns:
        return candidates
    return [replace(c, **{k: v for k, v in columns.items() if getattr(c, k) is None}) for c in candidates]


__all__ = ["FORMATS", "ImportProblem", "ImportReport", "detect_format", "import_files", "import_source"]
