"""Plain folders and dropped files.

In a folder, the first sub-folder below the source names the class of the files inside it: it is kept as
`attributes["class"]`, and folders called normal/ok/good or anomaly/abnormal/faulty also set the label.
Files directly in the source folder, and dropped files, come in without a label.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.data.importers.base import Candidate, ImportProblem, audio_files, label_from_name, require_folder


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    require_folder(source)
    candidates = []
    for path in audio_files(source):
        relative = path.relative_to(source)
        attributes, label = {}, None
        if len(relative.parts) > 1:
            attributes["class"] = relative.parts[0]
            label = label_from_name(relative.parts[0])
        candidates.append(Candidate(path=path, clip_id=relative.with_suffix("").as_posix(), label=label,
                                    attributes=attributes))
    return candidates, []


def collect_files(paths: Iterable[str | Path]) -> tuple[list[Candidate], list[ImportProblem]]:
    candidates, problems = [], []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            problems.append(ImportProblem(str(path), "is a folder; import folders with `earmark import`"))
            continue
        candidates.append(Candidate(path=path, clip_id=path.stem))
    return candidates, problems
