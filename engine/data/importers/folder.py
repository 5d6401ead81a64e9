"""Plain folders and dropped files.

In a folder, the first sub-folder below the source names the class of the files inside it: it is kept as
`attributes["class"]`. Folder names say what a recording is, at any depth below the source (case does not
matter; where two folders say the same thing, the one nearer the file wins):
- `train/`, `training/`, `test/`, `testing/`, `supplemental/` set the split;
- `normal/`, `ok/`, `good/`, `healthy/` set the label normal; `anomaly/`, `anomalous/`, `abnormal/`, `faulty/`,
  `fault/`, `bad/`, `defect/` set it anomaly;
- `source/`, `target/` set the domain;
- `section_00/` (also `section00`, `section-0`, `section 0`) sets the section ("00");
- the folder just above the outermost of those (inside the source) names the machine:
  `pump/train/normal/x.wav` is machine pump, split train, label normal; `fan/section_01/x.wav` is fan, 01.
Files directly in the source folder, and dropped files, come in with none of these; the import's defaults
(`earmark import --machine ... --split ...`) fill what the folders left empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from engine.data.importers.base import (
    Candidate,
    ImportProblem,
    audio_files,
    label_from_name,
    normalise_section,
    require_folder,
)

SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "supplemental": "supplemental"}
DOMAIN_NAMES = {"source": "source", "target": "target"}
SECTION_NAME = re.compile(r"^section[ _-]?([A-Za-z0-9]+)$", re.IGNORECASE)


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    require_folder(source)
    candidates = []
    for path in audio_files(source):
        relative = path.relative_to(source)
        attributes = {}
        if len(relative.parts) > 1:
            attributes["class"] = relative.parts[0]
        fields = fields_from_folders(relative.parts[:-1])
        candidates.append(
            Candidate(path=path, clip_id=relative.with_suffix("").as_posix(), attributes=attributes, **fields)
        )
    return candidates, []


def fields_from_folders(folders: Iterable[str]) -> dict[str, str]:
    """machine_type, section_id, domain, split and label as the folder names (outermost first) say."""
    folders = list(folders)
    found: dict[str, str] = {}
    outermost: int | None = None
    for depth, name in enumerate(folders):
        meaning = _meaning(name)
        if meaning is not None:
            found.update([meaning])  # a nearer folder overrides an outer one
            outermost = depth if outermost is None else outermost
    if outermost is not None and outermost > 0:
        found["machine_type"] = folders[outermost - 1]
    return found


def _meaning(name: str) -> tuple[str, str] | None:
    lowered = name.strip().lower()
    if lowered in SPLIT_NAMES:
        return "split", SPLIT_NAMES[lowered]
    if lowered in DOMAIN_NAMES:
        return "domain", DOMAIN_NAMES[lowered]
    label = label_from_name(lowered)
    if label is not None:
        return "label", label
    match = SECTION_NAME.match(name.strip())
    if match:
        return "section_id", normalise_section(match.group(1))
    return None


def collect_files(paths: Iterable[str | Path]) -> tuple[list[Candidate], list[ImportProblem]]:
    candidates, problems = [], []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            problems.append(ImportProblem(str(path), "is a folder; import folders with `earmark import`"))
            continue
        candidates.append(Candidate(path=path, clip_id=path.stem))
    return candidates, problems
