"""What every label-file reader shares: the regions it found with the line each came from, the lines it
could not use, number parsing that tolerates other tools' habits, and the text of a file whatever its
encoding (Praat writes UTF-16, Raven and Audacity on Windows sometimes write the system code page).
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass, field
from pathlib import Path

from engine.labels.bounds import fit_to_clip
from engine.store.labels import LabelError, Region, check_region

#: Where a region goes when the format names no clip: the caller fills in the clip the file belongs to.
NO_CLIP = ""


@dataclass(frozen=True)
class ReadRow:
    """One region a reader found, checked with `check_region`. In the formats that hold one clip per file
    `region.clip_id` is empty; the formats that hold many name the clip (`region.clip_id`) or its audio
    file (`file`), or both."""

    line: int
    region: Region
    file: str = ""
    #: How the region was changed to fit (a start a little before 0 s, clamped), or "".
    warning: str = ""


@dataclass
class ReadResult:
    """What a reader made of one file's text. `problems` are (line, what is wrong and what to do); line 0
    stands for the file as a whole."""

    rows: list[ReadRow] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, region: Region, file: str = "", missing_label: str = "no label; write one") -> None:
        """Keep `region` if it is one the store accepts, else note why not against its line."""
        if not region.label or not region.label.strip():
            self.problem(line, missing_label)
            return
        try:
            fitted, warning = fit_to_clip(region, None, None)  # the clip is not known yet: finite, from 0 s
            checked = check_region(fitted)
        except LabelError as exc:
            self.problem(line, str(exc))
            return
        self.rows.append(ReadRow(line, checked, file, warning or ""))

    def problem(self, line: int, what: str) -> None:
        self.problems.append((line, what))


class BadValue(ValueError):
    """A cell that should hold a number and does not; the message says which and what it holds."""


def number(text: object, what: str) -> float:
    """A finite float from a cell. A lone comma is taken as a decimal comma: tab-separated files written
    in a German or French locale carry them (Audacity and Raven both do)."""
    if isinstance(text, bool):
        raise BadValue(f"{what} {text!r} is not a number")
    if isinstance(text, int | float):
        value = float(text)
    else:
        cell = str(text).strip()
        if not cell:
            raise BadValue(f"no {what}")
        if "," in cell and "." not in cell and cell.count(",") == 1:
            cell = cell.replace(",", ".")
        try:
            value = float(cell)
        except ValueError:
            raise BadValue(f"{what} {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise BadValue(f"{what} {value} is not a finite number")
    return value


def one_line(label: str) -> str:
    """A label fit for a tab-separated line: tabs and line breaks would split the line."""
    return " ".join(label.replace("\t", " ").splitlines()).strip()


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(path: Path) -> str:
    """The text of a label file, decoded by its byte-order mark, else as UTF-8, else as Latin-1 (the
    code page of older Windows tools). A LabelError (without the path: the caller names the file) when
    it is missing, unreadable or not text at all."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LabelError("no such file; check the path") from None
    except IsADirectoryError:
        raise LabelError("is a folder, not a label file") from None
    except OSError as exc:
        raise LabelError(f"cannot be read ({exc.strerror})") from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise LabelError(f"starts like {codec.upper()} text but is not; save it again as UTF-8") from None
    if b"\x00" in data:
        raise LabelError("is not a text file (audio or other binary data?); choose a label file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        raise LabelError("is not a text file (audio or other binary data?); choose a label file")
    return text
