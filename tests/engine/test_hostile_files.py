"""Files built from data stay in their folder, exported tables are safe to open in a spreadsheet, and hostile
label files are bounded: a data set whose metadata names a machine `x/../../../escaped`, a label of
`=HYPERLINK(...)`, a 50 MB CSV cell, JSON nested 100 000 deep, regions ending at 1e308 s or 1e12 s on a 3 s
clip, and a box at 1e300 Hz are each named and kept out, while the good rows beside them are imported."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from engine import cli
from engine.csv_cells import escape_cell, unescape_cell
from engine.data.importers import import_files, import_source
from engine.evaluation.dcase_io import read_results
from engine.files import safe_name
from engine.labels import exchange
from engine.store import Project, results
from engine.store import labels as store
from engine.store.labels import Region
from tests.helpers import tone, write_wav

FORMULAS = [
    '=HYPERLINK("http://example.com/x","open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "'=already quoted",
    "''-twice",
]


@pytest.fixture
def scored(tmp_path) -> Project:
    """A project whose metadata.csv names a machine type that climbs out of any folder, and a wav whose name
    is a formula, with one stored score for that test clip (as `earmark score` leaves it)."""
    audio = tmp_path / "audio"
    write_wav(audio / "=cmd.wav", tone(1.0))
    (audio / "metadata.csv").write_text(
        "file,machine_type,section_id,split,label\n=cmd.wav,x/../../../escaped,../00,test,normal\n"
    )
    with Project.create(tmp_path / "project") as project:
        import_source(project, audio)
        clip = project.clips()[0]
        model_id, _ = results.add_model(project, "knn", clip.group, {}, 0.5)
        results.write_scores(project, model_id, [(clip.clip_id, -1.25, False, None, None)])
        yield project


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# -- nothing escapes its folder ---------------------------------------------------------------------------------
def test_export_dcase_keeps_a_machine_type_with_dotdot_inside_the_output_folder(scored, tmp_path):
    before = files_under(tmp_path)
    out = tmp_path / "deep" / "er" / "results"

    assert cli.main(["export", "dcase", str(scored.folder), str(out)]) == 0

    new = files_under(tmp_path) - before
    assert len(new) == 2 and all(p.parent == out / "knn" for p in new)  # beside each other, inside OUT
    names = sorted(p.name for p in new)
    assert names[0].startswith("anomaly_score_x_._._._escaped-") and names[1].startswith("decision_result_x_")
    # the wav name that reads as a formula is escaped in the file and comes back as it was
    assert (out / "knn" / names[0]).read_text().startswith("'=cmd.wav,")
    assert read_results(out / "knn" / names[0]) == [("=cmd.wav", "-1.25")]


def test_safe_names_are_readable_bounded_and_distinct():
    hostile = [
        "../../etc/passwd",
        "..",
        ".",
        ".hidden",
        "CON",
        "nul.txt",
        "a/b",
        "a\\b",
        "a:b",
        "x" * 400,
        "Lüfter_" * 60,
        "",
        "~root",
        "a..b",
        "-rf",
    ]
    names = [safe_name(text) for text in hostile]
    for name in names:
        assert name and "/" not in name and "\\" not in name and ".." not in name
        assert not name.startswith((".", "~", "-")) and len(name.encode()) <= 100
        assert name.split(".")[0].upper() not in ("CON", "NUL")
    assert len(set(names + ["a_b"])) == len(hostile) + 1  # "a/b", "a\\b" and "a_b" are three names
    assert [safe_name(t) for t in ("fan", "00", "section_00_source_test_normal_0001", "pump~1a2b3c4d")] == [
        "fan",
        "00",
        "section_00_source_test_normal_0001",
        "pump~1a2b3c4d",
    ]  # ordinary names are kept


def test_a_clip_whose_file_name_starts_with_a_dot_exports_a_label_file_that_imports_back(tmp_path):
    with Project.create(tmp_path / "project") as project:
        import_files(
            project,
            [
                write_wav(tmp_path / "audio" / ".pump.wav", tone(2.0)),
                write_wav(tmp_path / "audio" / "CON.wav", tone(2.0, freq=300.0)),
            ],
        )
        for clip in project.clips():
            store.add_region(project, Region(clip.clip_id, 0.5, 1.0, "LEAK"))

        written = exchange.export_labels(project, tmp_path / "labels", "audacity")
        project.db.execute("DELETE FROM regions")
        back = exchange.import_labels(project, [tmp_path / "labels"])

    assert all(p.parent == tmp_path / "labels" and not p.name.startswith(".") for p in written)
    assert back.problems == [] and len(back.added) == 2


# -- formula cells ----------------------------------------------------------------------------------------------
def test_csv_label_export_escapes_formula_cells_and_imports_them_back_unchanged(scored, tmp_path):
    clip = scored.clips()[0]
    store.add_regions(
        scored, [Region(clip.clip_id, 0.1 * i, 0.1 * i + 0.05, label) for i, label in enumerate(FORMULAS)]
    )
    path = tmp_path / "labels.csv"

    exchange.export_labels(scored, path)
    rows = list(csv.reader(io.StringIO(path.read_text())))
    scored.db.execute("DELETE FROM regions WHERE kind = 'manual'")
    back = exchange.import_labels(scored, [path])

    cells = [c for row in rows[1:] for c in row]
    assert not any(c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in cells)  # a spreadsheet shows text
    assert {row[0] for row in rows[1:]} == {"'=cmd"} and {row[1] for row in rows[1:]} == {"'=cmd.wav"}
    assert back.problems == [] and sorted(r.label for r in back.added) == sorted(FORMULAS)


def test_scores_csv_escapes_text_and_keeps_negative_scores_numbers(scored, capsys):
    assert cli.main(["scores", str(scored.folder), "--format", "csv"]) == 0
    header, row = list(csv.reader(io.StringIO(capsys.readouterr().out)))

    record = dict(zip(header, row, strict=True))
    assert record["clip_id"] == "'=cmd" and record["file"].endswith("=cmd.wav") and record["section"] == "../00"
    assert record["score"] == "-1.25"  # a number: Python's float text cannot hold a formula


def test_a_runs_scores_csv_escapes_text_cells(scored):
    import numpy as np

    from engine.detectors.base import Detection
    from engine.detectors.runs import _write_run

    clip = scored.clips()[0]
    detection = Detection(clip.clip_id, -1.25, False, np.zeros(2, np.float32), np.array([0.0, 0.5]))

    folder = _write_run(scored, "knn", {clip.clip_id: detection}, [clip])

    header, row = list(csv.reader(io.StringIO((folder / "scores.csv").read_text())))
    record = dict(zip(header, row, strict=True))
    assert record["clip_id"] == "'=cmd" and record["file"] == "'=cmd.wav" and record["score"] == "-1.25"


def test_escaping_round_trips_every_text():
    for text in [*FORMULAS, "", "'", "''", "plain", "'plain", "-", "\tx", "\rx", "'\t"]:
        assert unescape_cell(escape_cell(text)) == text
        assert escape_cell(text)[:1] not in ("=", "+", "-", "@", "\t", "\r")


# -- hostile label files ----------------------------------------------------------------------------------------
@pytest.fixture
def pump(tmp_path) -> Project:
    """A project of one 3 s clip recorded at 16 kHz (so its highest frequency is 8 kHz)."""
    with Project.create(tmp_path / "project") as project:
        import_files(project, [write_wav(tmp_path / "audio" / "pump.wav", tone(3.0))])
        yield project


def stored(project: Project) -> list[tuple]:
    return [(r.start_s, r.end_s, r.low_hz, r.high_hz, r.label) for r in store.regions(project, kinds=("manual",))]


def test_a_50_mb_csv_cell_is_named_and_nothing_of_that_file_is_imported(pump, tmp_path):
    hostile, good = tmp_path / "hostile.csv", tmp_path / "good.csv"
    hostile.write_text('clip_id,start_s,end_s,label\npump,0.1,0.2,LEAK\npump,0.3,0.4,"' + "x" * 50_000_000 + '"\n')
    good.write_text("clip_id,start_s,end_s,label\npump,1.0,1.5,LEAK\n")

    report = exchange.import_labels(pump, [hostile, good])

    assert stored(pump) == [(1.0, 1.5, None, None, "LEAK")]
    assert len(report.problems) == 1 and report.problems[0].startswith(f"{hostile}:3: a cell holds more than")
    assert "Nothing was read from it" in report.problems[0]


def test_json_nested_100000_deep_is_named_not_a_recursion_error(pump, tmp_path):
    hostile, good = tmp_path / "deep.json", tmp_path / "good.json"
    hostile.write_text('{"regions": ' + "[" * 100_000 + "]" * 100_000 + "}")
    good.write_text('[{"clip_id": "pump", "start_s": 1, "end_s": 2, "label": "LEAK"}]')

    report = exchange.import_labels(pump, [hostile, good])

    assert stored(pump) == [(1.0, 2.0, None, None, "LEAK")]
    assert report.problems == [
        f"{hostile}: nests lists and objects 100001 deep; an Earmark label file nests 3 "
        "(the file, its regions list, each region) and this one is not read"
    ]


def test_end_times_of_1e308_and_1e12_are_refused_and_a_little_past_the_end_is_clamped(pump, tmp_path):
    path = tmp_path / "ends.csv"
    path.write_text(
        "clip_id,start_s,end_s,label\n"
        "pump,0.5,1e308,LEAK\n"
        "pump,0.5,1e12,LEAK\n"
        "pump,0.5,3.4,LEAK\n"  # 0.4 s past the 3 s clip: a little (up to 0.5 s)
        "pump,0.5,4.0,LEAK\n"  # 1 s past: too far
        "pump,1.0,2.0,QUIET\n"
    )

    report = exchange.import_labels(pump, [path])

    assert stored(pump) == [(0.5, 3.0, None, None, "LEAK"), (1.0, 2.0, None, None, "QUIET")]
    assert [p.split(": ")[0] for p in report.problems] == [f"{path}:{n}" for n in (2, 3, 5)]
    assert "ends at 1e+308 s, more than 0.5 s past the end of clip 'pump' (3 s)" in report.problems[0]
    assert "ends at 1e+12 s" in report.problems[1] and "--clip" in report.problems[1]
    assert report.warnings == [f"{path}:4: ended at 3.4 s, past the end of clip 'pump': it now ends there, at 3 s"]
    assert report.warnings[0] in report.lines()  # printed by `earmark labels import` with the problems


def test_a_box_at_1e300_hz_is_refused_and_one_a_little_above_nyquist_is_clamped(pump, tmp_path):
    table, track = tmp_path / "boxes.csv", tmp_path / "pump.txt"
    table.write_text(
        "clip_id,start_s,end_s,low_hz,high_hz,label\n"
        "pump,0.5,1.0,100,1e300,LEAK\n"
        "pump,0.5,1.0,9000,10000,LEAK\n"
        "pump,0.5,1.0,100,8040,LEAK\n"  # 0.5 % above 8 kHz: a little (up to 1 %)
        "pump,1.0,2.0,100,4000,QUIET\n"
    )
    track.write_text("2.0\t2.5\tHISS\n\\\t100\t1e300\n")  # Audacity's frequency line

    report = exchange.import_labels(pump, [table, track])

    assert stored(pump) == [(0.5, 1.0, 100.0, 8000.0, "LEAK"), (1.0, 2.0, 100.0, 4000.0, "QUIET")]
    assert [p.split(": ")[0] for p in report.problems] == [f"{table}:2", f"{table}:3", f"{track}:1"]
    assert "reaches 1e+300 Hz, above the highest frequency of clip 'pump' (8000 Hz" in report.problems[0]
    assert "reaches 9000 Hz" in report.problems[1] and "1e+300 Hz" in report.problems[2]
    assert report.warnings == [
        f"{table}:4: reached 8040 Hz, above the highest frequency of clip 'pump': it now stops there, at 8000 Hz"
    ]


def test_a_region_ending_at_1e308_s_stored_by_an_older_earmark_is_cut_at_the_clip_end(tmp_path):
    from engine.classifiers.leak_data import labelled_segments
    from engine.data.leak_toy import generate_leaks
    from engine.detectors.leak.segments import SegmentSettings
    from engine.detectors.runs import Session
    from engine.jobs import Progress

    leaks = generate_leaks(tmp_path / "leaks", files_per_class=1, duration_s=2.0, seed=3)
    with Project.create(tmp_path / "project") as project:
        import_source(project, leaks)
        clip = project.clips()[0]
        store.add_region(project, Region(clip.clip_id, 0.0, 1e308, "LEAK"))  # what import stored before

        segments = labelled_segments(project, "binary", SegmentSettings(), Session(project).cache, Progress())

    assert len(segments.x) and set(segments.files) == {clip.clip_id}


def test_a_start_a_little_before_0_s_is_clamped_and_one_far_before_is_refused(pump, tmp_path):
    path = tmp_path / "pump.txt"
    path.write_text("-0.2\t1.0\tLEAK\n-1e300\t1.0\tLEAK\n")

    report = exchange.import_labels(pump, [path])

    assert stored(pump) == [(0.0, 1.0, None, None, "LEAK")]
    assert report.problems == [
        f"{path}:2: cannot start at -1e+300 s, before the start of the clip; times are seconds from its start"
    ]
    assert report.warnings == [
        f"{path}:1: started at -0.2 s, before the start of the clip: it now starts there, at 0 s"
    ]


def test_a_metadata_cell_nested_thousands_deep_is_named_and_the_rest_imported(tmp_path, capsys):
    audio = tmp_path / "audio"
    for name in ("a", "b"):
        write_wav(audio / f"{name}.wav", tone(0.5))
    deep = "[" * 5000 + "]" * 5000
    (audio / "metadata.csv").write_text(
        "relative_path,machine_type,section_id,split,is_anomaly,anomaly_regions\n"
        f"a.wav,valve,0,test,1,{deep}\n"
        'b.wav,valve,0,test,1,"[[0.1, 0.2]]"\n'
    )
    project = tmp_path / "project"
    assert cli.main(["new", str(project)]) == 0
    status = cli.main(["import", str(project), str(audio)])
    err = capsys.readouterr().err
    assert status in (0, 1) and "Traceback" not in err and "RecursionError" not in err
    named = [line for line in err.splitlines() if "metadata.csv line 2" in line]
    assert len(named) == 1 and "anomaly_regions" in named[0] and "5000 deep" in named[0], err
    assert len(named[0]) < 400  # the cell is not copied out whole
    with Project.open(project) as opened:
        assert opened.clip("b").anomaly_regions == ((0.1, 0.2),)
        assert opened.count_clips() == 1
