"""DCASE Task 2 layouts, 2020 to 2025: `<machine>/{train,test,supplemental}/<file>.wav`.

File names carry the metadata:
- 2021 onwards: `section_00_source_train_normal_0001_vel_6_loc_A.wav` (attributes as key_value pairs,
  `noAttribute` for none); evaluation sets hide domain and label: `section_00_0001.wav`;
- 2020: `normal_id_00_00000001.wav` / `anomaly_id_02_00000003.wav` (no domains), and `id_05_00000000.wav`.
Attribute files (`attributes_00.csv`: file_name, d1p, d1v, d2p, d2v, ...) and the evaluator's ground-truth
files (`ground_truth_<machine>_section_<id>_test.csv` in `ground_truth_data/`, `ground_truth_domain/` and
`ground_truth_attributes/`) anywhere below the source fill in what the names leave out.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.clip import DOMAINS, LABELS, SPLITS
from engine.data.importers.base import Candidate, ImportProblem, audio_files, normalise_section, require_folder

_MODERN = re.compile(r"^section_(?P<section>\d+)(?:_(?P<rest>.*))?$")
_LEGACY = re.compile(r"^(?:(?P<label>normal|anomaly)_)?id_(?P<section>\d+)_(?P<index>\d+)$")
_GROUND_TRUTH = re.compile(r"^ground_truth_(?P<machine>.+)_section_(?P<section>\d+)_test\.csv$")


@dataclass
class ParsedName:
    section_id: str | None = None
    domain: str | None = None
    split: str | None = None
    label: str | None = None
    index: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def parse_name(stem: str) -> ParsedName | None:
    """Metadata from a DCASE file name (without extension), or None if the name is not in a DCASE style."""
    legacy = _LEGACY.match(stem)
    if legacy:
        return ParsedName(section_id=normalise_section(legacy["section"]), label=legacy["label"], index=legacy["index"])
    modern = _MODERN.match(stem)
    if not modern:
        return None
    parsed = ParsedName(section_id=normalise_section(modern["section"]))
    tokens = modern["rest"].split("_") if modern["rest"] else []
    if tokens and tokens[0] in DOMAINS:
        parsed.domain = tokens.pop(0)
    if tokens and tokens[0] in SPLITS:
        parsed.split = tokens.pop(0)
    if tokens and tokens[0] in LABELS:
        parsed.label = tokens.pop(0)
    elif tokens and parsed.split == "supplemental" and not tokens[0].isdigit():
        parsed.attributes["supp_type"] = tokens.pop(0)
    if tokens and tokens[0].isdigit():
        parsed.index = tokens.pop(0)
    if tokens == ["noAttribute"]:
        tokens = []
    while len(tokens) >= 2:
        key, value = tokens.pop(0), tokens.pop(0)
        parsed.attributes[key] = value
    if tokens:
        parsed.attributes["extra"] = tokens[0]
    return parsed


def collect(source: Path) -> tuple[list[Candidate], list[ImportProblem]]:
    require_folder(source)
    problems: list[ImportProblem] = []
    attributes = _attribute_files(source, problems)
    truth = _ground_truth(source, problems)
    candidates = []
    for path in audio_files(source):
        split_dir, machine_dir = path.parent, path.parent.parent
        if split_dir.name not in SPLITS:
            problems.append(
                ImportProblem(
                    str(path), "not inside a <machine>/train, /test or /supplemental folder, as a DCASE layout has it"
                )
            )
            continue
        parsed = parse_name(path.stem)
        if parsed is None:
            problems.append(
                ImportProblem(
                    str(path),
                    "the name is not in a DCASE style "
                    "(section_00_source_train_normal_0001_... or "
                    "normal_id_00_00000001)",
                )
            )
            continue
        machine = machine_dir.name
        known = truth.get((machine, path.name), {})
        attrs = {**parsed.attributes, **attributes.get((machine, path.name), {}), **known.get("attributes", {})}
        candidates.append(
            Candidate(
                path=path,
                clip_id=f"{machine}/{split_dir.name}/{path.stem}",
                machine_type=machine,
                section_id=parsed.section_id,
                domain=parsed.domain or known.get("domain"),
                split=split_dir.name,
                label=parsed.label or known.get("label"),
                attributes=attrs,
            )
        )
    return candidates, problems


def _attribute_files(source: Path, problems: list[ImportProblem]) -> dict[tuple[str, str], dict[str, str]]:
    """`attributes_XX.csv` rows: {(machine, wav name): {d1p value: d1v value, ...}}."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for csv_path in sorted(source.rglob("attributes_*.csv")):
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                for row in csv.DictReader(f):
                    relative = Path(row.get("file_name") or row.get("filename") or "")
                    if not relative.name:
                        continue
                    machine = relative.parts[0] if len(relative.parts) > 2 else csv_path.parent.name
                    pairs = {}
                    for n in range(1, 10):
                        key, value = row.get(f"d{n}p"), row.get(f"d{n}v")
                        if key and value not in (None, ""):
                            pairs[key] = value
                    out[(machine, relative.name)] = pairs
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            problems.append(ImportProblem(str(csv_path), f"attribute file cannot be read ({exc})"))
    return out


def _ground_truth(source: Path, problems: list[ImportProblem]) -> dict[tuple[str, str], dict]:
    """The evaluator's ground truth: {(machine, wav name): {"label"|"domain"|"attributes": ...}}."""
    out: dict[tuple[str, str], dict] = {}
    for csv_path in sorted(source.rglob("ground_truth_*.csv")):
        match = _GROUND_TRUTH.match(csv_path.name)
        if not match:
            continue
        machine, kind = match["machine"], csv_path.parent.name
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                for number, row in enumerate(csv.reader(f), start=1):
                    if len(row) < 2:
                        continue
                    entry = out.setdefault((machine, Path(row[0]).name), {})
                    value = row[1].strip()
                    if "attributes" in kind:
                        parsed = parse_name(Path(value).stem)
                        if parsed is not None:
                            entry["attributes"] = parsed.attributes
                            entry.setdefault("domain", parsed.domain)
                            entry.setdefault("label", parsed.label)
                    elif value not in ("0", "1"):
                        problems.append(ImportProblem(f"{csv_path}:{number}", f"expected 0 or 1, got {value!r}"))
                    elif "domain" in kind:
                        entry["domain"] = DOMAINS[int(value)]
                    else:
                        entry["label"] = LABELS[int(value)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            problems.append(ImportProblem(str(csv_path), f"ground-truth file cannot be read ({exc})"))
    return out
