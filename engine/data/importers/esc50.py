"""ESC-50: `audio/*.wav` and `meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take).

The category becomes the clip's class (`attributes["class"]`) and the fold is kept (`attributes["fold"]`),
so the sound classifier can use the data set's own five folds as its split. Before anything is imported the
metadata is checked against the files on disk: rows whose file is missing and files no row names are listed
in the report (the data set's own check: 2000 rows, 2000 files).
"""

from __future__ import annotations

import csv
from pathlib import Path

from engine.data.importers.base import Candidate, ImportProblem, audio_files, require_folder
from engine.errors import EarmarkError

META = Path("meta") / "esc50.csv"
_REQUIRED = ("filename", "fold", "category")
#: The two ways metadata and disk disagree, as the report words them (the check counts them).
NO_FILE = "listed, but not in audio/"
NO_ROW = f"not listed in {META.as_posix()}"


def is_esc50(source: Path) -> bool:
    return source.is_dir() and (source / META).is_file()


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    require_folder(source)
    meta = source / META
    if not meta.is_file():
        raise EarmarkError(f"{source} is not an ESC-50 folder: {META} not found")
    audio = source / "audio"
    on_disk = {p.name: p for p in audio_files(audio)} if audio.is_dir() else {}
    candidates, problems, listed = [], [], set()
    try:
        with open(meta, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise EarmarkError(f"{meta} lacks the column(s) {', '.join(missing)}; is it ESC-50's esc50.csv?")
            for number, row in enumerate(reader, start=2):
                name = (row.get("filename") or "").strip()
                where = f"{META.as_posix()} line {number}"
                if not name:
                    problems.append(ImportProblem(where, "empty filename"))
                    continue
                listed.add(name)
                if name not in on_disk:
                    problems.append(ImportProblem(where, f"{name}: {NO_FILE}"))
                    continue
                attributes = {
                    key: (value or "").strip()
                    for key, value in row.items()
                    if key and key != "filename" and (value or "").strip()
                }
                attributes["class"] = attributes.pop("category", "")
                candidates.append(Candidate(path=on_disk[name], clip_id=Path(name).stem, attributes=attributes))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EarmarkError(f"{meta} is not a readable CSV file ({exc})") from None
    for name in sorted(set(on_disk) - listed):
        problems.append(ImportProblem(f"audio/{name}", NO_ROW))
    return candidates, problems


def verification(candidates: list[Candidate], problems: list[ImportProblem]) -> list[str]:
    """The metadata-versus-disk check in a few lines: counts, then what does not match."""
    unlisted = sum(1 for p in problems if p.reason == NO_ROW)
    missing = sum(1 for p in problems if p.reason.endswith(NO_FILE))
    classes = {c.attributes.get("class") for c in candidates}
    folds = {c.attributes.get("fold") for c in candidates}
    return [
        f"ESC-50 check: {len(candidates) + missing} metadata row(s), {len(candidates) + unlisted} audio "
        f"file(s); {len(candidates)} match, {missing} row(s) without a file, {unlisted} file(s) without a row; "
        f"{len(classes)} class(es), {len(folds)} fold(s)"
    ]
