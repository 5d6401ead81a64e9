"""Label exchange: every format gives back the regions it was given (to the precision it keeps), other
tools' files are read as those tools write them, bad lines are named and skipped, nothing is imported
twice, and `earmark labels export | import` says what it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import cli, cli_labels
from engine.data.importers import import_files
from engine.labels import exchange, formats
from engine.labels.tables import COLUMNS
from engine.store import Project
from engine.store import labels as store
from engine.store.labels import LabelError, Region
from tests.helpers import tone, write_wav

#: The precision each format keeps: Audacity writes six decimals, the others every digit.
PRECISION = {"audacity": 5e-7 + 1e-12, "raven": 0.0, "textgrid": 0.0, "csv": 0.0, "json": 0.0}

REGIONS = [
    Region("pump", 0.5, 1.2345678, "LEAK"),  # three LEAK regions overlapping one another
    Region("pump", 1.0, 2.0, "LEAK"),
    Region("pump", 1.1, 1.5, "LEAK"),
    Region("pump", 2.0, 2.5, "LEAK"),  # touches the second one's end: may share its TextGrid tier
    Region("pump", 0.25, 0.75, "MECHANICAL", low_hz=123.456789, high_hz=4567.891234),
    Region("pump", 2.0, 2.9999999, "QUIET"),
    Region("fan", 0.1, 0.2, "NORMAL"),
    Region("fan", 1 / 3, 1.9, "LEAK", low_hz=0.0, high_hz=3990.0),  # a box from 0 Hz, just short of Nyquist
]


@pytest.fixture
def clips_dir(tmp_path) -> Path:
    folder = tmp_path / "audio"
    write_wav(folder / "pump.wav", tone(3.0))
    write_wav(folder / "fan.wav", tone(2.0, sr=8000, freq=300.0), sr=8000)
    return folder


@pytest.fixture
def labelled(tmp_path, clips_dir) -> Project:
    """A project of two clips (3 s at 16 kHz, 2 s at 8 kHz) holding REGIONS."""
    with Project.create(tmp_path / "project") as project:
        import_files(project, [clips_dir / "pump.wav", clips_dir / "fan.wav"])
        assert sorted(project.clip_ids()) == ["fan", "pump"]
        store.add_regions(project, REGIONS)
        yield project


def manual(project: Project) -> list[Region]:
    return sorted(store.regions(project, kinds=("manual",)), key=lambda r: (r.clip_id, r.label, r.start_s, r.end_s))


def assert_same(got: list[Region], expected: list[Region], precision: float, boxes: bool = True) -> None:
    expected = sorted(expected, key=lambda r: (r.clip_id, r.label, r.start_s, r.end_s))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g.clip_id, g.label, g.kind) == (e.clip_id, e.label, "manual")
        assert g.start_s == pytest.approx(e.start_s, abs=precision, rel=0)
        assert g.end_s == pytest.approx(e.end_s, abs=precision, rel=0)
        if boxes and e.is_box:
            assert g.low_hz == pytest.approx(e.low_hz, abs=precision, rel=0)
            assert g.high_hz == pytest.approx(e.high_hz, abs=precision, rel=0)
        else:
            assert not g.is_box


def delete_manual(project: Project) -> None:
    for r in store.regions(project, kinds=("manual",)):
        store.delete_region(project, r.region_id)


# -- round trips ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", exchange.FORMATS)
def test_every_format_gives_back_what_it_was_given(labelled, tmp_path, fmt):
    out = tmp_path / ("labels." + fmt if fmt in ("csv", "json") else "labels")
    written = exchange.export_labels(labelled, out, fmt)
    delete_manual(labelled)

    report = exchange.import_labels(labelled, written)
    again = exchange.import_labels(labelled, written)

    assert report.problems == [] and report.files == len(written) and report.duplicates == 0
    assert len(report.added) == len(REGIONS)
    assert_same(manual(labelled), REGIONS, PRECISION[fmt], boxes=fmt != "textgrid")
    assert (len(again.added), again.duplicates, again.problems) == (0, len(REGIONS), [])
    assert len(manual(labelled)) == len(REGIONS)


@pytest.mark.parametrize("fmt", ["audacity", "raven", "textgrid"])
def test_per_clip_formats_write_one_file_per_clip_named_after_its_audio(labelled, tmp_path, fmt):
    written = exchange.export_labels(labelled, tmp_path / "out", fmt)

    ending = exchange.PER_CLIP[fmt]
    assert sorted(p.name for p in written) == sorted([f"fan{ending}", f"pump{ending}"])
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_fresh_project_with_the_same_audio_takes_the_files(labelled, tmp_path, clips_dir):
    written = exchange.export_labels(labelled, tmp_path / "labels", "raven")
    table = exchange.export_labels(labelled, tmp_path / "labels.csv")
    with Project.create(tmp_path / "other") as other:
        import_files(other, [clips_dir / "fan.wav", clips_dir / "pump.wav"])
        from_folder = exchange.import_labels(other, [tmp_path / "labels"])
        from_table = exchange.import_labels(other, table)

        assert (len(from_folder.added), from_folder.files, from_folder.problems) == (len(REGIONS), len(written), [])
        assert (len(from_table.added), from_table.duplicates) == (0, len(REGIONS))
        assert_same(manual(other), REGIONS, 0.0)
        assert {"LEAK", "MECHANICAL", "QUIET", "NORMAL"} <= {c.name for c in other.label_classes()}


def test_textgrid_puts_overlapping_regions_of_a_label_on_extra_tiers_that_tile_the_clip(labelled, tmp_path):
    [path] = exchange.export_labels(labelled, tmp_path / "pump.TextGrid", clip_ids=["pump"])
    text = path.read_text()

    assert 'name = "LEAK"' in text and 'name = "LEAK#2"' in text and 'name = "LEAK#3"' in text
    assert 'name = "LEAK#4"' not in text  # the region touching another's end shares its tier
    assert "xmax = 3.0" in text and text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"')
    for tier in formats.read_textgrid(text).rows:
        assert tier.region.label in {"LEAK", "MECHANICAL", "QUIET"}


def test_textgrid_tiers_have_no_gaps_or_overlaps():
    regions = [Region("", 0.5, 1.0, "A"), Region("", 0.7, 1.2, "A"), Region("", 2.0, 2.5, "A")]
    text = formats.write_textgrid(regions, 3.0)
    blocks = text.split("item [")[2:]
    for block in blocks:
        numbers = [
            float(line.split("=")[1]) for line in block.splitlines() if line.strip().startswith(("xmin", "xmax"))
        ]
        tier_min, tier_max, bounds = numbers[0], numbers[1], numbers[2:]
        assert (tier_min, tier_max) == (0.0, 3.0)
        assert bounds[0] == 0.0 and bounds[-1] == 3.0
        assert all(bounds[i] == bounds[i + 1] for i in range(1, len(bounds) - 1, 2))  # each starts where the last ended


# -- other tools' files ---------------------------------------------------------------------------------------------
def test_audacity_frequency_lines_make_boxes():
    text = (
        "1.000000\t2.500000\tLEAK\n"
        "\\\t100.500000\t2000.000000\n"
        "3\t4\tQUIET\n"
        "5,5\t6,25\tRANDOM\n"  # a decimal comma, as Audacity writes in some locales
        "\\\t-1.000000\t-1.000000\n"
    )  # Audacity's "no frequency"
    rows = formats.read_audacity(text).rows

    assert [(r.line, r.region.label, r.region.start_s, r.region.end_s) for r in rows] == [
        (1, "LEAK", 1.0, 2.5),
        (3, "QUIET", 3.0, 4.0),
        (4, "RANDOM", 5.5, 6.25),
    ]
    assert (rows[0].region.low_hz, rows[0].region.high_hz) == (100.5, 2000.0)
    assert not rows[1].region.is_box and not rows[2].region.is_box


def test_raven_columns_are_found_by_name_and_waveform_rows_are_not_read_twice():
    text = (
        "Begin Time (s)\tSelection\tHigh Freq (Hz)\tView\tEnd Time (s)\tBegin File\tLow Freq (Hz)\tChannel\t"
        "Label\tDelta Time (s)\n"
        "1.5\t1\t0\tWaveform 1\t2.5\tpump.wav\t0\t1\tLEAK\t1.0\n"
        "1.5\t1\t3000\tSpectrogram 1\t2.5\tpump.wav\t500\t1\tLEAK\t1.0\n"
        "0.2\t2\t8000.3\tSpectrogram 1\t0.4\tpump.wav\t0\t1\tQUIET\t0.2\n"  # the whole band: time-only
        "0.9\t3\t0\tWaveform 1\t1.1\tpump.wav\t0\t1\tNORMAL\t0.2\n"  # a selection only in the waveform
        "1.9\t4\t900\tSpectrogram 1\t2.1\tpump.wav\t100\t1\t\t0.2\n"
    )  # no annotation
    result = formats.read_raven(text, sample_rate=16000)

    got = [
        (r.line, r.region.label, r.region.start_s, r.region.end_s, r.region.low_hz, r.region.high_hz)
        for r in result.rows
    ]
    assert got == [
        (3, "LEAK", 1.5, 2.5, 500.0, 3000.0),
        (4, "QUIET", 0.2, 0.4, None, None),
        (5, "NORMAL", 0.9, 1.1, None, None),
    ]
    assert len(result.problems) == 1 and result.problems[0][0] == 6 and "annotation" in result.problems[0][1]


def test_a_raven_table_without_an_annotation_column_says_so():
    result = formats.read_raven("Selection\tBegin Time (s)\tEnd Time (s)\n1\t0.1\t0.2\n")
    assert result.rows == [] and len(result.problems) == 1 and "Annotation, Label or Class" in result.problems[0][1]


SHORT_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

0
3
<exists>
3
"IntervalTier"
"LEAK#2"
0
3
3
0
0.5
""
0.5
1.25
"leak here"
1.25
3
""
"IntervalTier"
""
0
3
2
0
2
"QUIET"
2
3
"  "
"TextTier"
"clicks"
0
3
1
1.5
"click"
"""


def test_praat_short_format_is_read_with_tier_names_or_interval_texts():
    result = formats.read_textgrid(SHORT_TEXTGRID)

    assert [(r.region.label, r.region.start_s, r.region.end_s) for r in result.rows] == [
        ("LEAK", 0.5, 1.25),
        ("QUIET", 0.0, 2.0),
    ]
    assert len(result.problems) == 1 and "point tier 'clicks'" in result.problems[0][1]


def test_textgrids_and_raven_tables_saved_as_txt_are_recognised(labelled, tmp_path):
    (tmp_path / "pump.txt").write_text(SHORT_TEXTGRID)
    (tmp_path / "fan.txt").write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
        "High Freq (Hz)\tAnnotation\n1\tSpectrogram 1\t1\t0.5\t0.6\t0\t4000\tQUIET\n"
    )

    report = exchange.import_labels(labelled, [tmp_path])

    assert sorted((r.clip_id, r.label, r.start_s, r.is_box) for r in report.added) == [
        ("fan", "QUIET", 0.5, False),
        ("pump", "LEAK", 0.5, False),
        ("pump", "QUIET", 0.0, False),
    ]
    assert len(report.problems) == 1 and "point tier" in report.problems[0]


def test_a_utf16_long_format_textgrid_written_by_praat_is_imported(labelled, tmp_path):
    text = (
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0 \nxmax = 3 \ntiers? <exists> \n'
        'size = 1 \nitem []: \n    item [1]:\n        class = "IntervalTier" \n        name = "Grüße ""x""" \n'
        "        xmin = 0 \n        xmax = 3 \n        intervals: size = 2 \n        intervals [1]:\n"
        '            xmin = 0 \n            xmax = 1.2345678 \n            text = "a" \n'
        '        intervals [2]:\n            xmin = 1.2345678 \n            xmax = 3 \n            text = "" \n'
    )
    path = tmp_path / "pump.TextGrid"
    path.write_bytes(text.encode("utf-16"))  # with a byte-order mark, as Praat writes it

    report = exchange.import_labels(labelled, [path])

    assert report.problems == []
    assert [(r.clip_id, r.label, r.start_s, r.end_s) for r in report.added] == [("pump", 'Grüße "x"', 0.0, 1.2345678)]


def test_csv_rows_find_their_clip_by_file_name_and_json_problems_name_lines(labelled, tmp_path):
    table = tmp_path / "hand.csv"
    table.write_text("file,start,end,label\n/elsewhere/fan.wav,0.5,0.7,RANDOM\nmissing.wav,0.5,0.7,RANDOM\n")
    listing = tmp_path / "hand.json"
    listing.write_text(
        '{"format": "earmark-labels", "version": 1, "regions": [\n'
        '  {"clip_id": "pump", "start_s": 0, "end_s": 0.5, "label": "QUIET"},\n'
        '  {"clip_id": "pump", "start_s": 1, "end_s": "soon", "label": "QUIET"}\n]}\n'
    )

    report = exchange.import_labels(labelled, [table, listing])

    assert sorted((r.clip_id, r.label, r.start_s) for r in report.added) == [
        ("fan", "RANDOM", 0.5),
        ("pump", "QUIET", 0.0),
    ]
    assert report.problems == [
        f"{table}:3: no clip of the project has file 'missing.wav'; check the name, or pass the clip (--clip CLIP_ID)",
        f"{listing}:3: end_s 'soon' is not a number",
    ]


# -- problems -------------------------------------------------------------------------------------------------------
def test_bad_lines_are_reported_by_line_and_the_good_ones_kept(labelled, tmp_path):
    path = tmp_path / "pump.txt"
    path.write_text("0.1\t0.2\tLEAK\nabc\t2\tLEAK\n3\t2\tLEAK\n-1\t1\tLEAK\n1\t2\t\n9\t9.5\tLEAK\n\n2.5\t3.2\tQUIET\n")

    report = exchange.import_labels(labelled, [path])

    # The last region reaches a little past the 3 s clip: it is kept, ending with the clip, and said so.
    assert [(r.start_s, r.end_s, r.label) for r in report.added] == [(0.1, 0.2, "LEAK"), (2.5, 3.0, "QUIET")]
    assert len(report.warnings) == 1 and report.warnings[0].startswith(f"{path}:8: ended at 3.2 s")
    assert [p.split(": ")[0] for p in report.problems] == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)]
    assert "not a number" in report.problems[0] and "end after it starts" in report.problems[1]
    assert "cannot start at -1" in report.problems[2] and "no label" in report.problems[3]
    assert "after the end of clip 'pump'" in report.problems[4] and "--clip" in report.problems[4]


def test_a_file_naming_no_clip_asks_for_the_clip_and_the_other_files_go_on(labelled, tmp_path):
    stray, missing, binary = tmp_path / "recording_7.txt", tmp_path / "gone.txt", tmp_path / "fan.txt"
    stray.write_text("0.1\t0.2\tLEAK\n")
    binary.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    good = tmp_path / "labels.csv"
    good.write_text("clip_id,start_s,end_s,label\nfan,0.3,0.4,LEAK\n")

    report = exchange.import_labels(labelled, [stray, missing, binary, good])
    told = exchange.import_labels(labelled, [stray], clip_id="fan")

    assert len(report.added) == 1 and report.files == 1
    assert len(report.problems) == 3
    assert report.problems[0].startswith(f"{stray}: ") and "(--clip CLIP_ID)" in report.problems[0]
    assert report.problems[1] == f"{missing}: no such file; check the path"
    assert report.problems[2].startswith(f"{binary}: is not a text file")
    assert [(r.clip_id, r.start_s) for r in told.added] == [("fan", 0.1)]


def test_clips_sharing_a_stem_get_their_id_in_the_file_name_and_come_back(labelled, tmp_path):
    other = write_wav(tmp_path / "second" / "pump.wav", tone(1.0))
    import_files(labelled, [other])
    twin = next(c.clip_id for c in labelled.clips() if c.clip_id.startswith("pump~"))
    store.add_region(labelled, Region(twin, 0.1, 0.9, "LEAK"))

    written = exchange.export_labels(labelled, tmp_path / "out", "audacity")
    delete_manual(labelled)
    report = exchange.import_labels(labelled, [tmp_path / "out"])
    (tmp_path / "pump.txt").write_text("0.1\t0.2\tLEAK\n")
    ambiguous = exchange.import_labels(labelled, [tmp_path / "pump.txt"])

    assert sorted(p.name for p in written) == sorted(["fan.txt", "pump__pump.txt", f"pump__{twin}.txt"])
    assert report.problems == [] and len(report.added) == len(REGIONS) + 1
    assert len(ambiguous.problems) == 1 and "matches 2 clips" in ambiguous.problems[0]


def test_a_file_that_is_not_an_audacity_track_is_one_problem(labelled, tmp_path):
    path = tmp_path / "pump.txt"
    path.write_text("Some notes about the pump\nit rattles\nat the start\n")

    report = exchange.import_labels(labelled, [path])

    assert report.added == [] and len(report.problems) == 1 and "Audacity label track" in report.problems[0]


def test_format_for_path_knows_the_names_and_says_which_exist():
    assert [
        exchange.format_for_path(n)
        for n in ("a.csv", "a.JSON", "a.textgrid", "a.Table.1.selections.txt", "a.txt", "a.lab")
    ] == ["csv", "json", "textgrid", "raven", "audacity", "audacity"]
    with pytest.raises(LabelError, match=re.escape("(--format audacity|raven|textgrid|csv|json)")):
        exchange.format_for_path("a.wav")


# -- export choices -------------------------------------------------------------------------------------------------
def test_exporting_a_selection_writes_only_those_regions(labelled, tmp_path):
    chosen = [r for r in store.regions(labelled, clip_id="pump", labels=["LEAK"])][:2]

    [table] = exchange.export_labels(labelled, tmp_path / "chosen.csv", regions=chosen)
    [track] = exchange.export_labels(labelled, tmp_path / "chosen.txt", regions=chosen[:1])

    rows = table.read_text().splitlines()
    assert rows[0] == ",".join(COLUMNS) and len(rows) == 3
    assert track.read_text() == "0.500000\t1.234568\tLEAK\n"


def test_export_filters_by_clip_kind_and_label_and_refuses_when_nothing_matches(labelled, tmp_path):
    [path] = exchange.export_labels(labelled, tmp_path / "quiet.json", labels=["QUIET"], clip_ids=["pump"])

    assert [r.region.label for r in formats.read_json(path.read_text()).rows] == ["QUIET"]
    with pytest.raises(LabelError, match="nothing to export"):
        exchange.export_labels(labelled, tmp_path / "x.csv", kinds=("proposal",))
    with pytest.raises(LabelError, match="give a folder"):
        exchange.export_labels(labelled, tmp_path / "all.TextGrid")


# -- the command line -----------------------------------------------------------------------------------------------
def test_cli_exports_and_imports_labels(labelled, tmp_path, capsys):
    folder = str(labelled.folder)

    exported = cli.main(
        [
            "labels",
            "export",
            folder,
            str(tmp_path / "out"),
            "--format",
            "textgrid",
            "--clip",
            "pump",
            "--label",
            "LEAK",
            "QUIET",
        ]
    )
    out = capsys.readouterr().out
    imported = cli.main(["labels", "import", folder, str(tmp_path / "out")])
    said = capsys.readouterr()

    assert exported == 0 and out.splitlines() == [f"wrote {tmp_path / 'out' / 'pump.TextGrid'}"]
    assert imported == 0 and said.out.strip() == "imported 0 region(s) from 1 file(s); 5 already present"
    assert said.err == ""


def test_cli_reports_problems_and_fails_when_nothing_could_be_read(labelled, tmp_path, capsys):
    folder = str(labelled.folder)
    bad = tmp_path / "pump.txt"
    bad.write_text("1\t0.5\tLEAK\n")
    partly = tmp_path / "fan.txt"
    partly.write_text("1\t0.5\tLEAK\n0.1\t0.3\tRANDOM\n")

    failed = cli.main(["labels", "import", folder, str(bad)])
    failed_out = capsys.readouterr()
    kept = cli.main(["labels", "import", folder, str(partly)])
    kept_out = capsys.readouterr()
    nothing = cli.main(["labels", "export", folder, str(tmp_path / "x.csv"), "--kind", "proposal"])
    nothing_out = capsys.readouterr()

    assert failed == 1 and failed_out.err.startswith(f"{bad}:1: a region must end after it starts")
    assert "imported 0 region(s) from 1 file(s); 0 already present" in failed_out.out
    assert kept == 0 and kept_out.err.startswith(f"{partly}:1: ") and "imported 1 region(s)" in kept_out.out
    assert nothing == 1 and nothing_out.err.startswith("earmark: error: nothing to export")
    assert len(nothing_out.err.strip().splitlines()) == 1


def test_cli_names_the_same_formats_and_kinds_as_the_engine():
    assert cli_labels.FORMATS == exchange.FORMATS
    assert cli_labels.KINDS == store.KINDS
