"""EmoDB (the Berlin Database of Emotional Speech): `wav/*.wav` named SSTTTEV.wav, where SS is the
speaker, TTT the text, E the emotion (the sixth character) and V the version.

The emotion becomes the clip's class (`attributes["class"]`); the speaker is kept (`attributes["speaker"]`)
so a split can keep each speaker on one side. The file names are the metadata: a file whose name does not
follow the pattern is listed in the report and left out, and the report counts the files per emotion.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from engine.data.importers.base import Candidate, ImportProblem, audio_files, require_folder

#: The sixth character of an EmoDB file name (German initials).
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


def is_emodb(source: Path) -> bool:
    """A folder whose audio files (in it or in wav/) all have EmoDB names."""
    if not source.is_dir():
        return False
    files = list(audio_files(source / "wav" if (source / "wav").is_dir() else source))
    return bool(files) and all(_parse(p.stem) is not None for p in files)


def _parse(stem: str) -> dict[str, str] | None:
    match = NAME.match(stem)
    if match is None or match["emotion"] not in EMOTIONS:
        return None
    return {
        "class": EMOTIONS[match["emotion"]],
        "speaker": match["speaker"],
        "text": match["text"],
        "version": match["version"],
    }


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    require_folder(source)
    root = source / "wav" if (source / "wav").is_dir() else source
    candidates, problems = [], []
    for path in audio_files(root):
        attributes = _parse(path.stem)
        if attributes is None:
            problems.append(
                ImportProblem(
                    str(path.relative_to(source)),
                    f"not an EmoDB name (SSTTTEV.wav, emotion one of {''.join(EMOTIONS)} as the sixth character)",
                )
            )
            continue
        candidates.append(Candidate(path=path, clip_id=path.stem, attributes=attributes))
    return candidates, problems


def verification(candidates: list[Candidate], problems: list[ImportProblem]) -> list[str]:
    counts = Counter(c.attributes["class"] for c in candidates)
    speakers = {c.attributes["speaker"] for c in candidates}
    per_class = ", ".join(f"{name} {counts[name]}" for name in sorted(counts))
    return [
        f"EmoDB check: {len(candidates) + len(problems)} audio file(s), {len(candidates)} with an EmoDB "
        f"name, {len(problems)} without; {len(speakers)} speaker(s); {per_class or 'no emotions'}"
    ]
