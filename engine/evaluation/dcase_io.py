"""DCASE result files, as the official evaluator reads them.

`anomaly_score_<machine>_section_<id>_test.csv`: one row `<wav file name>,<score>` per test clip;
`decision_result_<machine>_section_<id>_test.csv`: one row `<wav file name>,<0|1>`. No header.

Machine type, section and detector come from the data and go into file and folder names only through
`safe_name` (a machine type `../x` names a file inside the output folder, not beside it); a wav name that a
spreadsheet would take for a formula is escaped (`engine.csv_cells`), and `read_results` takes that off.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from engine.csv_cells import escape_cell, unescape_cell
from engine.errors import EarmarkError
from engine.files import safe_name, write_text_atomic


def result_names(machine_type: str, section_id: str) -> tuple[str, str]:
    stem = f"{safe_name(machine_type)}_section_{safe_name(section_id)}_test.csv"
    return f"anomaly_score_{stem}", f"decision_result_{stem}"


def write_results(folder: Path, rows: Sequence) -> list[Path]:
    """Write both files for every machine and section in `rows` (objects with machine_type, section_id,
    path, score, decision). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    by_section: dict[tuple[str, str], list] = {}
    for row in rows:
        by_section.setdefault((row.machine_type or "unknown", row.section_id or "00"), []).append(row)
    written = []
    for (machine, section), section_rows in sorted(by_section.items()):
        score_name, decision_name = result_names(machine, section)
        scores, decisions = io.StringIO(), io.StringIO()
        score_writer, decision_writer = (
            csv.writer(scores, lineterminator="\n"),
            csv.writer(decisions, lineterminator="\n"),
        )
        for row in section_rows:
            name = escape_cell(Path(row.path).name)
            score_writer.writerow([name, repr(float(row.score))])
            decision_writer.writerow([name, int(bool(row.decision))])
        write_text_atomic(folder / score_name, scores.getvalue())
        write_text_atomic(folder / decision_name, decisions.getvalue())
        written += [folder / score_name, folder / decision_name]
    return written


def export_dcase(project, out: str | Path, detector: str | None = None) -> dict[str, list[Path]]:
    """Write the test-split results of one detector into `out`, or of every scored detector into
    `out/<detector>/`. Returns the files written per detector."""
    from engine.store import results

    out = Path(out)
    rows = results.latest_scores(project, detector=detector, split="test")
    if not rows:
        what = f"{detector} scores" if detector else "scores"
        raise EarmarkError(
            f"no {what} for test clips in {project.folder}; run `earmark score {project.folder} --detector NAME` first"
        )
    names = [detector] if detector else sorted({r.detector for r in rows})
    return {
        name: write_results(out if detector else out / safe_name(name), [r for r in rows if r.detector == name])
        for name in names
    }


def read_results(path: str | Path) -> list[tuple[str, str]]:
    """The rows of a result file, as pairs of text (a wav name as it was before `write_results` escaped it)."""
    with open(path, newline="") as handle:
        return [tuple(unescape_cell(cell) for cell in row) for row in csv.reader(handle)]
