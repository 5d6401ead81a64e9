"""CSV and JSON label files: the regions of many clips in one file, each naming its clip (clip_id) and
its audio file's name (file), so the file can be read into another project holding the same audio.

Numbers are written as Python's shortest round-trip text, so a round trip keeps every bit of a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence

from engine.csv_cells import cell, field_problem, json_depth, unescape_cell
from engine.labels.base import NO_CLIP, BadValue, ReadResult, number
from engine.store.labels import Region

COLUMNS = ("clip_id", "file", "start_s", "end_s", "low_hz", "high_hz", "label", "kind", "confidence", "model_id")
JSON_FORMAT, JSON_VERSION = "earmark-labels", 1
#: How deep a JSON label file may nest lists and objects. Earmark's own nest three deep (the file, its
#: regions list, each region); a file far deeper is not a label file, and Python's parser would run out of
#: stack on it (RecursionError) long before it ran out of memory.
MAX_JSON_DEPTH = 32
#: Other names the columns go by in tables made by hand or by other tools (matched without regard to case).
_ALIASES = {
    "clip_id": ("clip_id", "clip"),
    "file": ("file", "filename", "file_name", "path"),
    "start_s": ("start_s", "start", "begin", "onset"),
    "end_s": ("end_s", "end", "stop", "offset"),
    "low_hz": ("low_hz", "low"),
    "high_hz": ("high_hz", "high"),
    "label": ("label", "annotation", "class"),
}


def _record(r: Region, files: Mapping[str, str]) -> dict:
    return {
        "clip_id": r.clip_id,
        "file": files.get(r.clip_id, ""),
        "start_s": r.start_s,
        "end_s": r.end_s,
        "low_hz": r.low_hz,
        "high_hz": r.high_hz,
        "label": r.label,
        "kind": r.kind,
        "confidence": r.confidence,
        "model_id": r.model_id,
    }


def write_csv(regions: Sequence[Region], files: Mapping[str, str]) -> str:
    """A CSV table with COLUMNS; `files` maps a clip_id to its audio file's name. Text cells that a
    spreadsheet would take for a formula are escaped (`engine.csv_cells`); numbers are written as numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in regions:
        record = _record(r, files)
        writer.writerow([cell(record[c]) for c in COLUMNS])
    return out.getvalue()


def write_json(regions: Sequence[Region], files: Mapping[str, str]) -> str:
    """`{"format": "earmark-labels", "version": 1, "regions": [...]}`, one region a line (so a reader's
    problems can name lines, and a diff shows which regions changed)."""
    items = [json.dumps(_record(r, files), ensure_ascii=False) for r in regions]
    body = ",\n".join(f"  {item}" for item in items)
    head = f'{{"format": "{JSON_FORMAT}", "version": {JSON_VERSION}, "regions": ['
    return f"{head}\n{body}\n]}}\n" if items else f"{head}]}}\n"


# -- reading ----------------------------------------------------------------------------------------------------
def read_csv(text: str) -> ReadResult:
    """Regions of a CSV table found by header names (COLUMNS, or common other names for them). Each row
    names its clip (clip_id) or audio file (file); a table naming neither is one clip's, given by the caller."""
    result = ReadResult()
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if ";" in first and "," not in first else ","  # spreadsheets in comma-decimal locales
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        _read_rows(result, reader)
    except csv.Error as exc:  # a cell over the field limit, a NUL byte: the rest cannot be trusted
        result.rows.clear()
        result.problems = [(reader.line_num, field_problem(exc))]
    return result


def _read_rows(result: ReadResult, reader) -> None:
    header: list[str] | None = None
    columns: dict[str, int | None] = {}
    for raw in reader:
        cells = [unescape_cell(c) for c in raw]
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            columns = {
                key: next((header.index(n) for n in names if n in header), None) for key, names in _ALIASES.items()
            }
            if columns["start_s"] is None or columns["end_s"] is None or columns["label"] is None:
                result.problem(
                    reader.line_num,
                    "the first line names no start_s, end_s and label columns; a "
                    f"label table has the header {','.join(COLUMNS)}",
                )
                return
            continue

        fields = {key: cells[i].strip() if i is not None and i < len(cells) else "" for key, i in columns.items()}
        _add(result, reader.line_num, fields)


def read_json(text: str) -> ReadResult:
    """Regions of an Earmark JSON label file (or a bare list of region objects)."""
    result = ReadResult()
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        result.problem(
            0,
            f"nests lists and objects {depth} deep; an Earmark label file nests 3 (the file, its "
            "regions list, each region) and this one is not read",
        )
        return result
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        result.problem(exc.lineno, f"not valid JSON ({exc.msg} at column {exc.colno}); is it an Earmark label file?")
        return result
    except ValueError as exc:  # a number too long to convert (Python's limit on digits), say
        result.problem(0, f"not readable as JSON ({str(exc).split(';')[0]}); is it an Earmark label file?")
        return result
    items = data
    if isinstance(data, dict):
        kind, version = data.get("format"), data.get("version", JSON_VERSION)
        if kind is not None and kind != JSON_FORMAT:
            result.problem(1, f"a {kind!r} file, not Earmark labels ({JSON_FORMAT!r})")
            return result
        if isinstance(version, int) and version > JSON_VERSION:
            result.problem(
                1,
                f"written by a newer Earmark (label file version {version}; this one reads "
                f"{JSON_VERSION}); update Earmark to read it",
            )
            return result
        items = data.get("regions")
    if not isinstance(items, list):
        result.problem(
            1,
            'no "regions" list; an Earmark label file is {"format": "earmark-labels", "version": 1, "regions": [...]}',
        )
        return result
    lines = _element_lines(text)
    for index, item in enumerate(items):
        line = lines[index] if index < len(lines) else 1
        if not isinstance(item, dict):
            result.problem(line, "a region is an object with start_s, end_s and label (and clip_id or file)")
            continue
        _add(result, line, {key: next((item[n] for n in names if n in item), None) for key, names in _ALIASES.items()})
    return result


def _add(result: ReadResult, line: int, fields: Mapping[str, object]) -> None:
    """One row or object: checked, then kept or reported."""

    def text(key: str) -> str:
        value = fields.get(key)
        return "" if value is None else str(value).strip()

    try:
        start, end = number(_given(fields, "start_s"), "start_s"), number(_given(fields, "end_s"), "end_s")
        low_given, high_given = text("low_hz") != "", text("high_hz") != ""
        if low_given != high_given:
            raise BadValue("a box needs both low_hz and high_hz; give both, or neither for a time-only region")
        low = number(fields["low_hz"], "low_hz") if low_given else None
        high = number(fields["high_hz"], "high_hz") if high_given else None
    except BadValue as exc:
        result.problem(line, str(exc))
        return
    result.add(
        line,
        Region(text("clip_id") or NO_CLIP, start, end, text("label"), low_hz=low, high_hz=high),
        file=text("file"),
        missing_label="no label; write the region's label in the label column",
    )


def _given(fields: Mapping[str, object], key: str) -> object:
    value = fields.get(key)
    return "" if value is None else value


def _element_lines(text: str) -> list[int]:
    """The line each element of the regions list starts on, so problems can name lines as they do in the
    other formats; empty when the layout is not the expected one (problems then say line 1)."""
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0

    def skip(p: int) -> int:
        while p < len(text) and text[p] in " \t\r\n":
            p += 1
        return p

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    try:
        pos = skip(pos)
        if text[pos] == "{":  # walk the top-level object to the "regions" list
            pos = skip(pos + 1)
            while text[pos] != "[":
                key, pos = decoder.raw_decode(text, pos)
                pos = skip(skip(pos) + 1)  # past the colon
                if key == "regions" and text[pos] == "[":
                    break
                _, pos = decoder.raw_decode(text, pos)
                pos = skip(pos)
                pos = skip(pos + 1) if text[pos] == "," else pos
        lines = []
        pos = skip(pos + 1)
        while pos < len(text) and text[pos] != "]":
            lines.append(line_at(pos))
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            pos = skip(pos + 1) if text[pos] == "," else pos
        return lines
    except (ValueError, IndexError):
        return []
