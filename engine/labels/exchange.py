"""Labels in and out of a project: export regions to other tools' label files, import them back.

Audacity, Raven and Praat files hold one clip each and are named after its audio file; CSV and JSON hold
any number of clips and name each region's clip. An import finds each file's clip, keeps the good lines
and reports the bad ones (`<file>:<line>: what is wrong`), skips regions the project already has (so
importing a file twice adds nothing) and stores the rest in one transaction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.data.clip import Clip
from engine.files import safe_name, write_text_atomic
from engine.labels import formats
from engine.labels.base import ReadResult, read_text
from engine.labels.bounds import PastTheEnd, fit_to_clip
from engine.store.labels import KINDS, LabelError, Region, add_regions
from engine.store.labels import regions as stored_regions
from engine.store.project import Project

FORMATS = ("audacity", "raven", "textgrid", "csv", "json")
#: The formats that hold one clip per file, and the name ending of such a file.
PER_CLIP = {"audacity": ".txt", "raven": ".selections.txt", "textgrid": ".TextGrid"}
#: How close two regions' times (s) and frequencies (Hz) must be to count as the same region: the
#: precision the format keeps (Audacity rounds to six decimals; the others keep every digit).
TOLERANCE = {"audacity": 5e-7}
DEFAULT_TOLERANCE = 1e-6
#: Formats that cannot carry frequencies: a region read from them matches a box with the same times.
NO_FREQUENCIES = ("textgrid",)
_RAVEN_NAME = re.compile(r"(\.table\.\d+)?\.selections$", re.IGNORECASE)


@dataclass
class LabelImport:
    """What an import did: the regions it stored, how many it found already in the project, the lines
    and files it could not use (`<file>:<line>: what is wrong and what to do`), and how many files it read."""

    added: list[Region] = field(default_factory=list)
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    files: int = 0
    #: Regions stored changed: clamped to their clip (`engine.labels.bounds`), `<file>:<line>: what changed`.
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"imported {len(self.added)} region(s) from {self.files} file(s); {self.duplicates} already present"

    def lines(self) -> list[str]:
        """The summary, then each problem and each warning (as `engine.cli.print_report` prints an import)."""
        return [self.summary(), *self.problems, *self.warnings]


def format_for_path(path: str | Path) -> str:
    """The label format a file's name says it holds."""
    name = Path(path).name.lower()
    for ending, fmt in (
        (".csv", "csv"),
        (".json", "json"),
        (".textgrid", "textgrid"),
        (".selections.txt", "raven"),
        (".txt", "audacity"),
        (".lab", "audacity"),
    ):
        if name.endswith(ending):
            return fmt
    raise LabelError(
        f"cannot tell the label format of {Path(path).name!r}: name it .txt or .lab (Audacity), "
        ".selections.txt (Raven), .TextGrid (Praat), .csv or .json, or choose the format "
        f"(--format {'|'.join(FORMATS)})"
    )


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise LabelError(f"no label format {fmt!r}; the formats are {', '.join(FORMATS)}")
    return fmt


# -- export -------------------------------------------------------------------------------------------------------
def export_labels(
    project: Project,
    out: str | Path,
    fmt: str | None = None,
    regions: list[Region] | None = None,
    kinds: Sequence[str] = ("manual",),
    clip_ids: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
) -> list[Path]:
    """Write regions to label files and return the files written. `regions` given: exactly those (a
    user's selection); else the project's regions of `kinds`, narrowed to `clip_ids` and `labels`.

    CSV and JSON: `out` is the file. The per-clip formats: `out` is the file when one clip is exported
    and `out` has a suffix, else a folder holding `<audio file stem><ending>` per clip."""
    out = Path(out)
    fmt = _check_format(fmt) if fmt else format_for_path(out)
    clips = {c.clip_id: c for c in project.clips()}
    chosen = _choose(project, clips, regions, kinds, clip_ids, labels)
    if fmt in ("csv", "json"):
        _write_atomic(out, _table_text(fmt, chosen, clips))
        return [out]
    by_clip = _by_clip(chosen)
    if len(by_clip) == 1 and out.suffix and not out.is_dir():
        targets = {next(iter(by_clip)): out}
    else:
        if out.suffix and not out.is_dir() and _looks_like_label_file(out):
            raise LabelError(
                f"{len(by_clip)} clips have regions to export and a {fmt} file holds one clip; give "
                f"a folder instead of {out.name} (each clip gets its own file there)"
            )
        names = file_stems(clips.values())
        targets = {cid: out / f"{names[cid]}{PER_CLIP[fmt]}" for cid in by_clip}
    written = []
    for cid, path in targets.items():
        _write_atomic(path, _clip_text(fmt, by_clip[cid], clips[cid]))
        written.append(path)
    return written


def export_text(
    project: Project,
    fmt: str,
    regions: list[Region] | None = None,
    kinds: Sequence[str] = ("manual",),
    clip_ids: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
) -> str:
    """What `export_labels` would write, as text (for standard output), choosing regions the same way.

    CSV and JSON take any number of clips. Audacity, Raven and TextGrid files do not name their clip, so
    they are given for one clip only: several clips' files run together could not be told apart or
    imported back, and a mistake there would go unnoticed."""
    fmt = _check_format(fmt)
    clips = {c.clip_id: c for c in project.clips()}
    chosen = _choose(project, clips, regions, kinds, clip_ids, labels)
    if fmt in ("csv", "json"):
        return _table_text(fmt, chosen, clips)
    by_clip = _by_clip(chosen)
    if len(by_clip) > 1:
        raise LabelError(
            f"{len(by_clip)} clips have regions to export, and a {fmt} file holds one clip without "
            "naming it; choose one clip (--clip ID), or --format csv or json (each row names its "
            "clip), or give a folder instead of -"
        )
    clip_id, found = next(iter(by_clip.items()))
    return _clip_text(fmt, found, clips[clip_id])


def _by_clip(regions: Iterable[Region]) -> dict[str, list[Region]]:
    by_clip: dict[str, list[Region]] = {}
    for r in regions:
        by_clip.setdefault(r.clip_id, []).append(r)
    return by_clip


def _table_text(fmt: str, regions: list[Region], clips: dict[str, Clip]) -> str:
    files = {cid: Path(clip.path).name for cid, clip in clips.items()}
    return (formats.write_csv if fmt == "csv" else formats.write_json)(regions, files)


def _clip_text(fmt: str, regions: list[Region], clip: Clip) -> str:
    if fmt == "audacity":
        return formats.write_audacity(regions)
    if fmt == "raven":
        return formats.write_raven(regions, clip.sample_rate)
    return formats.write_textgrid(regions, clip.duration_s)


def _choose(
    project: Project,
    clips: dict[str, Clip],
    regions: list[Region] | None,
    kinds: Sequence[str],
    clip_ids: Iterable[str] | None,
    labels: Iterable[str] | None,
) -> list[Region]:
    if regions is not None:
        unknown = sorted({r.clip_id for r in regions} - set(clips))
        if unknown:
            raise LabelError(
                f"no clip {unknown[0]!r} in the project; the selection holds regions of another project's clips"
            )
        chosen = list(regions)
    else:
        bad = [k for k in kinds if k not in KINDS] if kinds else ["(none)"]
        if bad:
            raise LabelError(f"no region kind {bad[0]!r}; choose among {', '.join(KINDS)}")
        wanted = None if clip_ids is None else list(dict.fromkeys(clip_ids))
        for cid in wanted or ():
            if cid not in clips:
                raise LabelError(f"no clip {cid!r} in the project; `earmark info` lists what it holds")
        chosen = stored_regions(project, kinds=tuple(kinds), labels=None if labels is None else list(labels))
        if wanted is not None:
            keep = set(wanted)
            chosen = [r for r in chosen if r.clip_id in keep]
    if not chosen and regions is not None:
        raise LabelError("nothing to export: the selection holds no regions; select some first")
    if not chosen:
        raise LabelError(
            f"nothing to export: no {' or '.join(kinds)} regions match; draw or import some, or "
            "choose other kinds, clips or labels"
        )
    return sorted(chosen, key=lambda r: (r.clip_id, r.start_s, r.end_s, r.label))


def _looks_like_label_file(path: Path) -> bool:
    try:
        format_for_path(path)
    except LabelError:
        return False
    return True


def file_stems(clips: Iterable[Clip]) -> dict[str, str]:
    """The name each clip's label file gets (without its ending): its audio file's stem, with the clip id
    appended where two clips share a stem, so neither file overwrites the other; both made safe as a file
    name (`safe_name`: a stem or id from a data set never leads the file out of the folder exported to)."""
    clips = list(clips)
    counts: dict[str, int] = {}
    for clip in clips:
        counts[Path(clip.path).stem] = counts.get(Path(clip.path).stem, 0) + 1
    return {
        clip.clip_id: safe_name(Path(clip.path).stem)
        if counts[Path(clip.path).stem] == 1
        else f"{safe_name(Path(clip.path).stem)}__{safe_name(clip.clip_id)}"
        for clip in clips
    }


def _write_atomic(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise LabelError(f"cannot write {path}: {exc.strerror or exc}; choose a place you can write to") from None


# -- import -------------------------------------------------------------------------------------------------------
def import_labels(
    project: Project, paths: Sequence[str | Path], fmt: str | None = None, clip_id: str | None = None
) -> LabelImport:
    """Read label files (or folders of them) into the project as manual regions. `clip_id` names the clip
    of the per-clip formats' files (else their names must match one clip's audio file), and takes the
    rows of CSV and JSON files that name no clip of the project."""
    if fmt is not None:
        _check_format(fmt)
    clips = {c.clip_id: c for c in project.clips()}
    if clip_id is not None and clip_id not in clips:
        raise LabelError(f"no clip {clip_id!r} in the project; `earmark info` lists what it holds")
    report = LabelImport()
    known: dict[tuple[str, str, int], list[Region]] = {}  # by clip, label and millisecond of the start
    for r in stored_regions(project, kinds=("manual",)):
        known.setdefault(_bucket(r), []).append(r)
    new: list[Region] = []
    for path, file_fmt in _files(paths, fmt, report):
        try:
            read = _read_file(path, file_fmt, fmt is None, clips, clip_id)
        except LabelError as exc:
            report.problems.append(f"{path}: {exc}")
            continue
        report.files += 1
        tolerance = TOLERANCE.get(read.fmt, DEFAULT_TOLERANCE) + 1e-9  # + float noise on the rounded figure
        for region in read.regions:
            clip, label, ms = _bucket(region)
            nearby = (other for step in (-1, 0, 1) for other in known.get((clip, label, ms + step), ()))
            if any(_same(region, other, tolerance, read.fmt not in NO_FREQUENCIES) for other in nearby):
                report.duplicates += 1
                continue
            known.setdefault(_bucket(region), []).append(region)  # a repeat later in this call is one too
            new.append(region)
        report.problems += [f"{path}:{line}: {what}" if line else f"{path}: {what}" for line, what in read.problems]
        report.warnings += [f"{path}:{line}: {what}" for line, what in read.warnings]
    if new:
        report.added = add_regions(project, new)
    return report


@dataclass
class _Read:
    fmt: str
    regions: list[Region]
    problems: list[tuple[int, str]]
    warnings: list[tuple[int, str]]


def _files(paths: Sequence[str | Path], fmt: str | None, report: LabelImport) -> list[tuple[Path, str]]:
    """Each file to read with its format; a folder stands for the label files in it."""
    found: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            try:
                found.append((path, fmt or format_for_path(path)))
            except LabelError as exc:
                report.problems.append(f"{path}: {exc}")
            continue
        try:
            children = sorted(c for c in path.iterdir() if c.is_file() and not c.name.startswith("."))
        except OSError as exc:
            report.problems.append(f"{path}: cannot list the folder ({exc.strerror})")
            continue
        inside = [(c, fmt or format_for_path(c)) for c in children if _looks_like_label_file(c)]
        if not inside:
            report.problems.append(
                f"{path}: no label files in this folder (.txt, .lab, .selections.txt, .TextGrid, .csv, .json)"
            )
        found += inside
    return found


def _read_file(path: Path, fmt: str, sniff: bool, clips: dict[str, Clip], clip_id: str | None) -> _Read:
    text = read_text(path)  # first: a missing file is the problem to report, not its name
    if fmt in PER_CLIP:
        clip = clips[clip_id] if clip_id is not None else _clip_for_file(path, clips)
    if sniff and fmt == "audacity":
        fmt = _sniff(text, fmt)
    if fmt in PER_CLIP:
        readers: dict[str, Callable[[str], ReadResult]] = {
            "audacity": formats.read_audacity,
            "textgrid": formats.read_textgrid,
            "raven": lambda t: formats.read_raven(t, clip.sample_rate),
        }
        result = readers[fmt](text)
        rows = [(row.line, replace(row.region, clip_id=clip.clip_id), row.warning) for row in result.rows]
    else:
        result = (formats.read_csv if fmt == "csv" else formats.read_json)(text)
        rows, by_name = [], _by_file_name(clips.values())
        for row in result.rows:
            found = _clip_for_row(row.region.clip_id, row.file, clips, by_name, clip_id)
            if isinstance(found, str):
                result.problem(row.line, found)
            else:
                rows.append((row.line, replace(row.region, clip_id=found.clip_id), row.warning))
    read = _Read(fmt, [], list(result.problems), [])
    for line, region, said in rows:
        clip = clips[region.clip_id]
        try:
            region, warning = fit_to_clip(region, clip.duration_s, clip.sample_rate)
        except PastTheEnd as exc:
            read.problems.append((line, f"{exc}; if the file is another clip's, pass that clip (--clip CLIP_ID)"))
            continue
        except LabelError as exc:
            read.problems.append((line, str(exc)))
            continue
        if said or warning:
            read.warnings.append((line, "; ".join(w for w in (said, warning) if w)))
        read.regions.append(replace(region, kind="manual", model_id=None, confidence=None, region_id=None))
    read.problems.sort(key=lambda p: p[0])
    return read


def _sniff(text: str, fmt: str) -> str:
    """A .txt file is an Audacity track by name, but Raven tables and TextGrids get saved as .txt too."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "begin time (s)" in first.lower() and "\t" in first:
        return "raven"
    if '"ooTextFile' in first:
        return "textgrid"
    return fmt


def clip_named_by(project: Project, path: str | Path) -> str | None:
    """The clip a per-clip label file names (by its file name), or None when it names none or several."""
    try:
        return _clip_for_file(Path(path), {c.clip_id: c for c in project.clips()}).clip_id
    except LabelError:
        return None


def _clip_for_file(path: Path, clips: dict[str, Clip]) -> Clip:
    """The clip a per-clip label file belongs to, by its name: the audio file's stem, or the name an
    export gives it when two clips share a stem."""
    stem = _RAVEN_NAME.sub("", path.stem)
    names = file_stems(clips.values())
    matches = [c for c in clips.values() if stem in (Path(c.path).stem, names[c.clip_id])]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LabelError(
            f"the name {stem!r} matches no clip's audio file; pass the clip it belongs to (--clip CLIP_ID)"
        )
    shown = ", ".join(repr(c.clip_id) for c in matches[:3]) + (", ..." if len(matches) > 3 else "")
    raise LabelError(
        f"the name {stem!r} matches {len(matches)} clips ({shown}); pass the clip it belongs to (--clip CLIP_ID)"
    )


def _by_file_name(clips: Iterable[Clip]) -> dict[str, list[Clip]]:
    by_name: dict[str, list[Clip]] = {}
    for clip in clips:
        by_name.setdefault(Path(clip.path).name, []).append(clip)
    return by_name


def _clip_for_row(
    named: str, file: str, clips: dict[str, Clip], by_name: dict[str, list[Clip]], fallback: str | None
) -> Clip | str:
    """A CSV or JSON row's clip: by its clip_id, else by its audio file's name; else what is wrong."""
    if named in clips:
        return clips[named]
    base = re.split(r"[\\/]", file)[-1] if file else ""
    matches = by_name.get(base, [])
    if len(matches) == 1:
        return matches[0]
    if fallback is not None:
        return clips[fallback]
    if len(matches) > 1:
        return (
            f"{len(matches)} clips have the audio file name {base!r}; give the row's clip_id, or pass the "
            "clip (--clip CLIP_ID)"
        )
    if not named and not base:
        return "the row names no clip; give its clip_id or file, or pass the clip (--clip CLIP_ID)"
    said = " or ".join(f"{what} {value!r}" for what, value in (("clip_id", named), ("file", base)) if value)
    return f"no clip of the project has {said}; check the name, or pass the clip (--clip CLIP_ID)"


def _bucket(region: Region) -> tuple[str, str, int]:
    """Where a region is looked for among the known ones: a duplicate starts within a millisecond."""
    return region.clip_id, region.label, math.floor(region.start_s * 1000)


def _same(new: Region, old: Region, tolerance: float, boxes: bool) -> bool:
    """Whether `new` is `old` again, within the precision of the format `new` was read from."""
    if new.clip_id != old.clip_id or new.label != old.label:
        return False
    if abs(new.start_s - old.start_s) > tolerance or abs(new.end_s - old.end_s) > tolerance:
        return False
    if not boxes:
        return True
    if new.is_box != old.is_box:
        return False
    return not new.is_box or (abs(new.low_hz - old.low_hz) <= tolerance and abs(new.high_hz - old.high_hz) <= tolerance)
