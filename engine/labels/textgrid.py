"""Praat TextGrid files: one IntervalTier per label, its intervals tiling the clip.

Praat requires a tier's intervals to cover xmin..xmax without overlap, so the gaps between regions are
empty-text intervals, and regions of one label that overlap go on extra tiers named `LABEL#2`,
`LABEL#3`, ... (the reader strips that suffix again). A TextGrid has no frequencies: a time-frequency box
is written as its time span, which is all this format can hold.

Both of Praat's text layouts are read: the long one ("xmin = 0", written here) and the short one (bare
values, one per line). They hold the same values in the same order, so one tokenizer serves both: it
keeps quoted strings, numbers and the <exists>/<absent> flag, and drops the long layout's names
(`xmin =`, `item [1]:`).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.labels.base import NO_CLIP, ReadResult
from engine.store.labels import Region

#: The suffix of the extra tiers that hold a label's overlapping regions.
_TIER_SUFFIX = re.compile(r"#\d+$")
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|\[[^\]]*\]|![^\n]*|([^\s"\[!]+)')


# -- writing ------------------------------------------------------------------------------------------------------
def write_textgrid(regions: Sequence[Region], duration_s: float) -> str:
    """A long-format TextGrid from 0 to the clip's duration (or the last region's end, if later)."""
    xmax = max([float(duration_s), *(float(r.end_s) for r in regions)])
    tiers = _tiers(regions)
    out = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {_num(xmax)}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for index, (name, on_tier) in enumerate(tiers, 1):
        intervals = _tile(on_tier, xmax)
        out += [
            f"    item [{index}]:",
            '        class = "IntervalTier"',
            f"        name = {_quote(name)}",
            "        xmin = 0",
            f"        xmax = {_num(xmax)}",
            f"        intervals: size = {len(intervals)}",
        ]
        for number, (start, end, text) in enumerate(intervals, 1):
            out += [
                f"        intervals [{number}]:",
                f"            xmin = {_num(start)}",
                f"            xmax = {_num(end)}",
                f"            text = {_quote(text)}",
            ]
    return "".join(f"{line}\n" for line in out)


def _tiers(regions: Sequence[Region]) -> list[tuple[str, list[Region]]]:
    """Tiers by label name; each region goes on the first of its label's tiers it does not overlap."""
    tiers: list[tuple[str, list[Region]]] = []
    for label in sorted({r.label for r in regions}):
        own: list[list[Region]] = []
        for r in sorted((r for r in regions if r.label == label), key=lambda r: (r.start_s, r.end_s)):
            free = next((tier for tier in own if tier[-1].end_s <= r.start_s), None)
            if free is None:
                own.append([r])
            else:
                free.append(r)
        tiers += [(label if n == 1 else f"{label}#{n}", tier) for n, tier in enumerate(own, 1)]
    return tiers


def _tile(regions: list[Region], xmax: float) -> list[tuple[float, float, str]]:
    intervals, at = [], 0.0
    for r in regions:
        if r.start_s > at:
            intervals.append((at, float(r.start_s), ""))
        intervals.append((float(r.start_s), float(r.end_s), r.label))
        at = float(r.end_s)
    if at < xmax or not intervals:
        intervals.append((at, xmax, ""))
    return intervals


def _num(value: float) -> str:
    return "0" if value == 0 else repr(float(value))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'  # Praat doubles a quote inside a string


# -- reading ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str  # "text", "number" or "flag"
    value: object
    line: int


class _Broken(Exception):
    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line


def read_textgrid(text: str) -> ReadResult:
    """Regions of a TextGrid: each non-empty interval, labelled with its tier's name (without a `#n`
    suffix), or with its own text where the tier has no name. Point tiers mark instants, not regions,
    and are left out."""
    result = ReadResult()
    tokens = _Tokens(text)
    try:
        header = [tokens.take("text"), tokens.take("text")]
        # Old versions of Praat named the short layout "ooTextFile short".
        if header[0].value not in ("ooTextFile", "ooTextFile short") or header[1].value != "TextGrid":
            raise _Broken(
                header[0].line,
                'not a Praat TextGrid: it does not start with File type = "ooTextFile" and Object class = "TextGrid"',
            )
        tokens.take("number"), tokens.take("number")
        if tokens.take("flag").value != "<exists>":
            return result
        for _ in range(tokens.count()):
            _read_tier(tokens, result)
    except _Broken as exc:
        result.problem(exc.line, str(exc))
    return result


def _read_tier(tokens: _Tokens, result: ReadResult) -> None:
    kind = tokens.take("text")
    name = str(tokens.take("text").value).strip()
    tokens.take("number"), tokens.take("number")
    size = tokens.count()
    if kind.value == "TextTier":
        for _ in range(size):
            tokens.take("number"), tokens.take("text")
        result.problem(kind.line, f"point tier {name!r} left out: its points mark instants, not regions")
        return
    if kind.value != "IntervalTier":
        raise _Broken(
            kind.line,
            f"a tier of class {kind.value!r}; a TextGrid holds IntervalTier and TextTier "
            "tiers only (save it again from Praat)",
        )
    label = _TIER_SUFFIX.sub("", name).strip()
    for _ in range(size):
        start, end, interval = tokens.take("number"), tokens.take("number"), tokens.take("text")
        words = str(interval.value).strip()
        if not words:  # a gap between regions
            continue
        result.add(
            start.line,
            Region(NO_CLIP, float(start.value), float(end.value), label or words),
            missing_label="an interval with no label",
        )


class _Tokens:
    """The values of a TextGrid in order, each with its line."""

    def __init__(self, text: str) -> None:
        self._breaks = [m.start() for m in re.finditer("\n", text)]
        self._tokens: Iterator[_Token] = self._scan(text)
        self._last_line = 1

    def _scan(self, text: str) -> Iterator[_Token]:
        for match in _TOKEN.finditer(text):
            line = bisect.bisect_right(self._breaks, match.start()) + 1
            quoted, word = match.group(1), match.group(2)
            if quoted is not None:
                yield _Token("text", quoted.replace('""', '"'), line)
            elif word in ("<exists>", "<absent>"):
                yield _Token("flag", word, line)
            elif word is not None:
                try:
                    value = float(word)
                except ValueError:
                    continue  # a name of the long layout: "xmin", "=", "intervals:"
                if math.isfinite(value):
                    yield _Token("number", value, line)

    def take(self, kind: str) -> _Token:
        token = next(self._tokens, None)
        if token is None:
            raise _Broken(self._last_line, f"the TextGrid ends early (a {kind} was due); save it again from Praat")
        self._last_line = token.line
        if token.kind != kind:
            raise _Broken(
                token.line, f"a {kind} was due here but the TextGrid has {token.value!r}; save it again from Praat"
            )
        return token

    def count(self) -> int:
        token = self.take("number")
        if token.value != int(token.value) or token.value < 0:
            raise _Broken(token.line, f"{token.value} is not a count; save the TextGrid again from Praat")
        return int(token.value)
