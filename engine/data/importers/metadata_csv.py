"""A `metadata.csv` beside the audio, one row per clip with the Clip fields.

This is the contract the synthetic generator writes (and any site can fill in by hand): `relative_path`
(or `path`) is required; `clip_id`, `machine_type`, `section_id`, `domain`, `split`, `label` (or
`is_anomaly`) and `anomaly_regions` (a JSON list of [start_s, end_s]) are read when present; any other
non-empty column (speed_level, noise_id, snr_db, ...) becomes an attribute. QA columns are measured again
from the audio rather than trusted.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from engine.csv_cells import json_depth
from engine.data.clip import DOMAINS, LABELS, SPLITS
from engine.data.importers.base import Candidate, ImportProblem, normalise_section
from engine.errors import EarmarkError

METADATA_NAME = "metadata.csv"
_PATH_COLUMNS = ("relative_path", "path", "file", "filename")
_FIELDS = {
    "clip_id",
    "machine_type",
    "section_id",
    "domain",
    "split",
    "label",
    "is_anomaly",
    "anomaly_regions",
    "sample_rate",
    "duration_s",
    *_PATH_COLUMNS,
}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
#: anomaly_regions is a list of [start_s, end_s] pairs: two deep.
REGIONS_DEPTH = 2


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    csv_path = source / METADATA_NAME if source.is_dir() else source
    if not csv_path.is_file():
        raise EarmarkError(f"{csv_path} not found; a metadata import needs a {METADATA_NAME} file")
    root = csv_path.parent
    candidates, problems = [], []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            path_column = next((c for c in _PATH_COLUMNS if c in columns), None)
            if path_column is None:
                raise EarmarkError(f"{csv_path} has no relative_path column (columns: {', '.join(columns)})")
            for number, row in enumerate(reader, start=2):
                where = f"{csv_path.name} line {number}"
                try:
                    candidates.append(_candidate(root, row, path_column))
                except ValueError as exc:
                    problems.append(ImportProblem(where, str(exc)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EarmarkError(f"{csv_path} is not a readable CSV file ({exc})") from None
    return candidates, problems


def _candidate(root: Path, row: dict[str, str | None], path_column: str) -> Candidate:
    def value(name: str) -> str | None:
        text = (row.get(name) or "").strip()
        return text or None

    relative = value(path_column)
    if relative is None:
        raise ValueError(f"empty {path_column}")
    path = (root / relative) if not Path(relative).is_absolute() else Path(relative)
    if not path.exists():
        raise ValueError(f"{relative}: file not found")
    domain, split, label = value("domain"), value("split"), value("label")
    for name, text, allowed in (("domain", domain, DOMAINS), ("split", split, SPLITS), ("label", label, LABELS)):
        if text is not None and text not in allowed:
            raise ValueError(f"{name} {text!r} is not one of {', '.join(allowed)}")
    flag = (value("is_anomaly") or "").lower()
    if flag and flag not in _TRUE | _FALSE:
        raise ValueError(f"is_anomaly {flag!r} is not true or false")
    if label is None and flag:
        label = "anomaly" if flag in _TRUE else "normal"
    elif flag and (label == "anomaly") != (flag in _TRUE):
        raise ValueError(f"label {label!r} contradicts is_anomaly {flag!r}")
    regions = _regions(value("anomaly_regions"))
    attributes = {
        key: text.strip()
        for key, text in row.items()
        if key and key not in _FIELDS and not key.startswith("qa_") and text and text.strip()
    }
    return Candidate(
        path=path,
        clip_id=value("clip_id") or Path(relative).with_suffix("").as_posix(),
        machine_type=value("machine_type"),
        section_id=normalise_section(value("section_id")),
        domain=domain,
        split=split,
        label=label,
        attributes=attributes,
        anomaly_regions=regions,
    )


def _regions(text: str | None) -> list[tuple[float, float]]:
    if text is None:
        return []
    shown = text if len(text) <= 80 else f"{text[:60]}...({len(text)} characters)"
    depth = json_depth(text)  # counted before parsing: a deep cell would exhaust the parser's stack
    if depth > REGIONS_DEPTH:
        raise ValueError(
            f"anomaly_regions {shown!r} nests lists {depth} deep; it must be a JSON list of "
            "[start_s, end_s] pairs (2 deep)"
        )
    try:
        data = json.loads(text)
        regions = [(float(start), float(end)) for start, end in data]
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"anomaly_regions {shown!r} is not a JSON list of [start_s, end_s] ({exc})") from None
    for start, end in regions:
        if not 0 <= start < end:
            raise ValueError(f"anomaly region [{start}, {end}] must have 0 <= start < end")
    return regions
