"""Readers and writers of one clip's regions in the label formats other tools speak.

Pure functions over text and `Region`s: a writer turns regions into a file's text, a reader turns text
into a `ReadResult` (the regions, each with its line, and the lines it could not use). Finding the clip a
file belongs to, and storing what was read, is `engine.labels.exchange`'s part.

- Audacity label tracks (here): `start<TAB>end<TAB>label`, six decimals, and for a time-frequency box
  Audacity's frequency line `\\<TAB>low<TAB>high` after its label line.
- Raven selection tables (here): one "Spectrogram 1" row per region; columns found by header name.
- Praat TextGrid: `engine.labels.textgrid`.
- CSV and JSON, which hold the regions of many clips: `engine.labels.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.labels.base import NO_CLIP, BadValue, ReadResult, number, one_line
from engine.labels.tables import read_csv, read_json, write_csv, write_json
from engine.labels.textgrid import read_textgrid, write_textgrid
from engine.store.labels import Region

__all__ = [
    "RAVEN_HEADER",
    "read_audacity",
    "read_csv",
    "read_json",
    "read_raven",
    "read_textgrid",
    "write_audacity",
    "write_csv",
    "write_json",
    "write_raven",
    "write_textgrid",
]


def _in_time_order(regions: Sequence[Region]) -> list[Region]:
    return sorted(regions, key=lambda r: (r.start_s, r.end_s, r.label))


# -- Audacity -------------------------------------------------------------------------------------------------
def write_audacity(regions: Sequence[Region]) -> str:
    """An Audacity label track. Audacity keeps six decimals, so that is what a round trip keeps."""
    lines = []
    for r in _in_time_order(regions):
        lines.append(f"{r.start_s:.6f}\t{r.end_s:.6f}\t{one_line(r.label)}")
        if r.is_box:
            lines.append(f"\\\t{r.low_hz:.6f}\t{r.high_hz:.6f}")
    return "".join(f"{line}\n" for line in lines)


def read_audacity(text: str) -> ReadResult:
    """Regions of an Audacity label track; a frequency line makes the label line before it a box."""
    result = ReadResult()
    # [line, start, end, label, low, high]; a label line waits for a frequency line that may follow it
    entries: list[list] = []
    previous = "none"  # what the last non-empty line was: "label", "bad label", "frequency" or "none"
    lines = unreadable = 0
    for line_no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        lines += 1
        fields = raw.split("\t") if "\t" in raw else raw.split(None, 2)  # hand-written files use spaces
        if fields[0].strip() == "\\":
            if previous == "label":
                _attach_frequencies(entries, result, line_no, fields)
            elif previous != "bad label":  # after a bad label line it goes unread with it
                result.problem(line_no, "a frequency line (starting with \\) must follow the label line it belongs to")
            previous = "frequency"
            continue
        try:
            start = number(fields[0], "start time")
            end = number(fields[1] if len(fields) > 1 else "", "end time")
        except BadValue as exc:
            result.problem(line_no, f"{exc}; a label line is start, end and label separated by tabs")
            previous = "bad label"
            unreadable += 1
            continue
        entries.append([line_no, start, end, "\t".join(fields[2:]).strip(), None, None])
        previous = "label"
    for line_no, start, end, label, low, high in entries:
        if line_no is None:  # its frequency line was bad: already reported
            continue
        result.add(
            line_no,
            Region(NO_CLIP, start, end, label, low_hz=low, high_hz=high),
            missing_label="no label after the start and end times; write one after a tab",
        )
    if not result.rows and lines > 1 and unreadable == lines:
        # Nothing on any line: the file is something else, and one line saying so beats one per line.
        first_line, first = result.problems[0]
        what = (
            f"{first}; no line of this file could be read: is it an Audacity label track (start, end, "
            "label separated by tabs)?"
        )
        result.problems = [(first_line, what)]
    return result


def _attach_frequencies(entries: list[list], result: ReadResult, line_no: int, fields: list[str]) -> None:
    entry = entries[-1]
    try:
        low = number(fields[1] if len(fields) > 1 else "", "low frequency")
        high = number(fields[2] if len(fields) > 2 else "", "high frequency")
    except BadValue as exc:
        result.problem(line_no, f"{exc}; the region of line {entry[0]} was skipped with it")
        entry[0] = None
        return
    # Audacity writes -1 for a frequency it does not know: no lower edge is 0 Hz, no upper edge no box.
    if high < 0:
        return
    entry[4], entry[5] = max(low, 0.0), high


# -- Raven ----------------------------------------------------------------------------------------------------
RAVEN_HEADER = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Annotation",
)
#: Names users give Raven's annotation column; matched without regard to case.
ANNOTATION_COLUMNS = ("Annotation", "Label", "Class")
#: How far from 0 Hz and the Nyquist frequency a selection may be and still mean "the whole band".
NYQUIST_SLACK_HZ = 0.5


def write_raven(regions: Sequence[Region], sample_rate: float) -> str:
    """A Raven selection table; a region without a box spans the whole band, 0 Hz to sample_rate / 2."""
    rows = ["\t".join(RAVEN_HEADER)]
    for selection, r in enumerate(_in_time_order(regions), 1):
        low, high = (r.low_hz, r.high_hz) if r.is_box else (0.0, sample_rate / 2)
        rows.append(
            "\t".join(
                [
                    str(selection),
                    "Spectrogram 1",
                    "1",
                    repr(float(r.start_s)),
                    repr(float(r.end_s)),
                    repr(float(low)),
                    repr(float(high)),
                    one_line(r.label),
                ]
            )
        )
    return "".join(f"{row}\n" for row in rows)


def read_raven(text: str, sample_rate: float | None = None) -> ReadResult:
    """Regions of a Raven selection table: one per selection, from its Spectrogram row (a Waveform row of
    the same selection repeats it). A selection spanning 0 Hz to the Nyquist frequency of `sample_rate`
    is a time-only region."""
    result = ReadResult()
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return result
    header_no, header = lines[0]
    names = [name.strip().lower() for name in header.split("\t")]

    def column(*options: str) -> int | None:
        return next((names.index(o.lower()) for o in options if o.lower() in names), None)

    begin, end = column("Begin Time (s)"), column("End Time (s)")
    if begin is None or end is None:
        result.problem(
            header_no,
            "not a Raven selection table: its first line names no 'Begin Time (s)' and "
            "'End Time (s)' columns; save the table from Raven with them",
        )
        return result
    annotation = column(*ANNOTATION_COLUMNS)
    if annotation is None:
        result.problem(
            header_no,
            "the table has no annotation column (Annotation, Label or Class); add one holding each selection's label",
        )
        return result
    view, selection, low, high = column("View"), column("Selection"), column("Low Freq (Hz)"), column("High Freq (Hz)")
    rows = [(n, line.split("\t")) for n, line in lines[1:]]

    def cell(cells: list[str], index: int | None) -> str:
        return cells[index].strip() if index is not None and index < len(cells) else ""

    def spectrogram(cells: list[str]) -> bool:
        return view is None or cell(cells, view).lower().startswith("spectrogram")

    with_spectrogram = {cell(cells, selection) for _, cells in rows if spectrogram(cells)}
    taken: set[str] = set()
    for line_no, cells in rows:
        number_ = cell(cells, selection)
        if number_:
            # Other views of a selection (Waveform 1, a second spectrogram) repeat the row already read.
            if number_ in taken or (not spectrogram(cells) and number_ in with_spectrogram):
                continue
            taken.add(number_)
        try:
            start, stop = number(cell(cells, begin), "begin time"), number(cell(cells, end), "end time")
            box = _raven_box(cell(cells, low), cell(cells, high), sample_rate)
        except BadValue as exc:
            result.problem(line_no, str(exc))
            continue
        result.add(
            line_no,
            Region(
                NO_CLIP,
                start,
                stop,
                cell(cells, annotation),
                low_hz=box[0] if box else None,
                high_hz=box[1] if box else None,
            ),
            missing_label=f"selection {number_ or '?'} has no annotation; write its label in the "
            f"{names[annotation]!r} column",
        )
    return result


def _raven_box(low_text: str, high_text: str, sample_rate: float | None) -> tuple[float, float] | None:
    if not low_text and not high_text:
        return None
    low, high = number(low_text, "low frequency"), number(high_text, "high frequency")
    if low <= 0 and high <= 0:  # a waveform-only selection carries no band
        return None
    if sample_rate and abs(low) <= NYQUIST_SLACK_HZ and abs(high - sample_rate / 2) <= NYQUIST_SLACK_HZ:
        return None  # the whole band: what a time-only region is written as
    return low, high
