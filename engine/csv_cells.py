"""CSV cells safe to open in a spreadsheet, and CSV text safe to read whoever wrote it.

Excel and LibreOffice take a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return ahead
of one) for a formula: a label such as `=HYPERLINK("http://...")` in an exported table would run when the
file is opened. Every text cell Earmark writes that starts so gets a leading apostrophe (the OWASP rule:
the spreadsheet shows the cell as text and hides the apostrophe), and Earmark's readers take it off again,
so an export followed by an import gives back the same text. A text that itself starts with apostrophes
ahead of such a character gets one more, so that too comes back unchanged.

Numbers (times, frequencies, scores) are written as numbers, never escaped: Python's text for a float or
an int cannot hold a formula, and a spreadsheet must still sort and plot them (`-0.5` stays a number). A
reader of a numeric column takes an apostrophe off too, in case another tool escaped it.

Fields: Python's csv module refuses a field over 128 KiB with a bare `_csv.Error`. Importing this module
raises that bound to `MAX_FIELD_CHARS` (1 MiB: far above any label or file name, far below what would
hurt), and `field_problem` turns the error beyond it into a sentence.

JSON in a cell (attributes, a label file's JSON): `json_depth` says how deep it nests before it is parsed, so
a hostile cell cannot exhaust the parser's stack.
"""

from __future__ import annotations

import csv
import re

import numpy as np

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_START = frozenset("=+-@\t\r")
#: The longest field the CSV readers accept, in characters.
MAX_FIELD_CHARS = 1 << 20

# Only ever raised, never lowered: another reader in the process may have asked for more.
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))


def _looks_like_formula(text: str) -> bool:
    """Whether `text`, once a leading run of apostrophes is set aside, starts like a formula."""
    rest = text.lstrip("'")
    return bool(rest) and rest[0] in FORMULA_START


def escape_cell(text: str) -> str:
    """A text cell as it is written: with a leading apostrophe where a spreadsheet would take it for a
    formula (or where a reader would take one of its own apostrophes off)."""
    return f"'{text}" if _looks_like_formula(text) else text


def unescape_cell(text: str) -> str:
    """A cell as `escape_cell` was given it: its leading apostrophe taken off where `escape_cell` put one."""
    return text[1:] if text.startswith("'") and _looks_like_formula(text[1:]) else text


def cell(value: object) -> str:
    """Any value as a cell: None empty, a float as its shortest round-trip text, an int as itself, and
    text (anything else) escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return escape_cell(str(value))


def field_problem(error: csv.Error) -> str:
    """What a csv.Error means for the user, as a sentence (the caller names the file and line)."""
    if "field larger than field limit" in str(error):
        return (
            f"a cell holds more than {MAX_FIELD_CHARS:,} characters, more than any label table needs: is "
            "this a label file? Nothing was read from it"
        )
    return f"cannot be read as CSV ({error}); nothing was read from it"


_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')


def json_depth(text: str) -> int:
    """How deep lists and objects nest in `text` (brackets inside strings do not count); counted without
    parsing, so that a hostile file cannot exhaust the parser's stack before it is refused."""
    bare = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if not bare.size:
        return 0
    step = ((bare == ord("[")) | (bare == ord("{"))).astype(np.int32) - ((bare == ord("]")) | (bare == ord("}")))
    return int(max(0, np.cumsum(step).max()))
