"""Importers: every layout comes in with its metadata, twice is the same as once, bad files are named."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.importers import detect_format, import_files, import_source
from engine.data.importers.dcase import parse_name
from engine.errors import EarmarkError
from engine.jobs import Cancelled, RecordingProgress
from engine.store import Project
from tests.helpers import tone, write_wav


def test_the_synthetic_set_imports_with_all_its_metadata_and_only_once(project, toy_dataset):
    with open(toy_dataset / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    report = import_source(project, toy_dataset)

    assert report.format == "metadata" and report.added == len(rows) and not report.problems
    expected = Counter((r["machine_type"], r["section_id"], r["domain"], r["split"], r["label"] or None) for r in rows)
    got = Counter((c.machine_type, c.section_id, c.domain, c.split, c.label) for c in project.clips())
    assert got == expected
    anomaly = project.clips(label="anomaly")[0]
    row = next(r for r in rows if r["clip_id"] == anomaly.clip_id)
    expected_regions = [value for region in json.loads(row["anomaly_regions"]) for value in region]
    assert [value for region in anomaly.anomaly_regions for value in region] == pytest.approx(expected_regions)
    assert anomaly.attributes["speed_level"] == row["speed_level"]
    assert anomaly.attributes["noise_id"] == row["noise_id"]
    assert anomaly.qa.rms == pytest.approx(float(row["qa_rms"]), abs=0.05)

    again = import_source(project, toy_dataset)
    assert again.added == 0 and again.already_present == len(rows)
    assert project.count_clips() == len(rows)


def test_a_folder_with_bad_files_imports_the_good_ones_and_names_the_bad(tmp_path):
    folder = tmp_path / "recordings"
    write_wav(folder / "pump_a.wav", tone(1.0, freq=200))
    write_wav(folder / "pump_b.wav", tone(1.0, freq=300))
    truncated = write_wav(folder / "pump_cut.wav", tone(1.0, freq=400))
    truncated.write_bytes(truncated.read_bytes()[:9000])
    (folder / "notes.wav").write_text("meeting notes, not audio")
    Project.create(tmp_path / "p").close()

    with Project.open(tmp_path / "p") as project:
        report = import_source(project, folder)
    problems = {p.where.rsplit("/", 1)[-1]: p.reason for p in report.problems}

    assert report.added == 2
    assert set(problems) == {"pump_cut.wav", "notes.wav"}
    assert "truncated" in problems["pump_cut.wav"]
    assert "not a readable audio file" in problems["notes.wav"]
    with Project.open(tmp_path / "p") as project:
        assert sorted(c.clip_id for c in project.clips()) == ["pump_a", "pump_b"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "section_00_source_train_normal_0001_vel_6_loc_A",
            dict(
                section_id="00",
                domain="source",
                split="train",
                label="normal",
                index="0001",
                attributes={"vel": "6", "loc": "A"},
            ),
        ),
        (
            "section_02_target_test_anomaly_0012_car_C1_spd_1_mic_2",
            dict(
                section_id="02",
                domain="target",
                split="test",
                label="anomaly",
                index="0012",
                attributes={"car": "C1", "spd": "1", "mic": "2"},
            ),
        ),
        (
            "section_00_source_train_normal_0000_noAttribute",
            dict(section_id="00", domain="source", split="train", label="normal", index="0000", attributes={}),
        ),
        (
            "section_01_target_test_normal_0003",
            dict(section_id="01", domain="target", split="test", label="normal", index="0003", attributes={}),
        ),
        ("section_00_0042", dict(section_id="00", domain=None, split=None, label=None, index="0042", attributes={})),
        (
            "section_00_source_supplemental_noise_0002_mic_1",
            dict(
                section_id="00",
                domain="source",
                split="supplemental",
                label=None,
                index="0002",
                attributes={"supp_type": "noise", "mic": "1"},
            ),
        ),
        ("normal_id_00_00000001", dict(section_id="00", domain=None, label="normal", index="00000001", attributes={})),
        (
            "anomaly_id_04_00000123",
            dict(section_id="04", domain=None, label="anomaly", index="00000123", attributes={}),
        ),
        ("id_05_00000000", dict(section_id="05", label=None, index="00000000")),
    ],
)
def test_dcase_name_grammar(name, expected):
    parsed = parse_name(name)
    assert parsed is not None
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key


@pytest.mark.parametrize("name", ["recording_2024_05_01", "sectional_00", "normal_00000001", "pump"])
def test_names_outside_the_dcase_grammar_are_not_parsed(name):
    assert parse_name(name) is None


def _dcase_tree(root):
    write_wav(root / "fan" / "train" / "section_00_source_train_normal_0000_m-n_W.wav", tone(0.5, freq=100))
    write_wav(root / "fan" / "train" / "section_00_target_train_normal_0000_m-n_X.wav", tone(0.5, freq=110))
    write_wav(root / "fan" / "test" / "section_00_source_test_anomaly_0000_m-n_W.wav", tone(0.5, freq=120))
    write_wav(root / "fan" / "test" / "section_00_target_test_normal_0001_noAttribute.wav", tone(0.5, freq=130))
    # 2020 style, no domains
    write_wav(root / "pump" / "train" / "normal_id_02_00000000.wav", tone(0.5, freq=140))
    write_wav(root / "pump" / "test" / "anomaly_id_02_00000007.wav", tone(0.5, freq=150))
    # an evaluation set: labels and domains only in the evaluator's ground-truth files
    write_wav(root / "ToyDrone" / "test" / "section_00_0000.wav", tone(0.5, freq=160))
    write_wav(root / "ToyDrone" / "test" / "section_00_0001.wav", tone(0.5, freq=170))
    truth = root / "evaluator"
    for kind, rows in {
        "ground_truth_data": ["section_00_0000.wav,1", "section_00_0001.wav,0"],
        "ground_truth_domain": ["section_00_0000.wav,1", "section_00_0001.wav,0"],
        "ground_truth_attributes": [
            "section_00_0000.wav,section_00_target_test_anomaly_0012_car_C1_spd_1",
            "section_00_0001.wav,section_00_source_test_normal_0031_car_B2_spd_2",
        ],
    }.items():
        (truth / kind).mkdir(parents=True)
        (truth / kind / "ground_truth_ToyDrone_section_00_test.csv").write_text("\n".join(rows) + "\n")
    (root / "fan" / "attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v\nfan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W,rpm,1200\n"
    )


def test_dcase_layouts_2020_to_2025_import_with_names_attributes_and_ground_truth(project, tmp_path):
    root = tmp_path / "dcase"
    _dcase_tree(root)
    assert detect_format(root) == "dcase"

    report = import_source(project, root)

    assert report.added == 8 and not report.problems
    clips = {c.clip_id: c for c in project.clips()}
    train = clips["fan/train/section_00_source_train_normal_0000_m-n_W"]
    assert (train.machine_type, train.section_id, train.domain, train.split, train.label) == (
        "fan",
        "00",
        "source",
        "train",
        "normal",
    )
    assert train.attributes == {"m-n": "W", "rpm": "1200"}
    assert clips["fan/test/section_00_source_test_anomaly_0000_m-n_W"].label == "anomaly"
    assert clips["fan/test/section_00_target_test_normal_0001_noAttribute"].attributes == {}
    legacy = clips["pump/test/anomaly_id_02_00000007"]
    assert (legacy.machine_type, legacy.section_id, legacy.domain, legacy.label) == ("pump", "02", None, "anomaly")
    hidden = clips["ToyDrone/test/section_00_0000"]
    assert (hidden.domain, hidden.label, hidden.attributes) == ("target", "anomaly", {"car": "C1", "spd": "1"})
    assert (clips["ToyDrone/test/section_00_0001"].domain, clips["ToyDrone/test/section_00_0001"].label) == (
        "source",
        "normal",
    )

    assert import_source(project, root).added == 0


def test_dcase_files_outside_the_layout_are_reported(project, tmp_path):
    root = tmp_path / "dcase"
    write_wav(root / "fan" / "train" / "section_00_source_train_normal_0000.wav")
    write_wav(root / "fan" / "train" / "my_own_recording.wav", tone(0.5, freq=500))
    write_wav(root / "fan" / "loose.wav", tone(0.5, freq=600))

    report = import_source(project, root, "dcase")

    assert report.added == 1
    reasons = {p.where.rsplit("/", 1)[-1]: p.reason for p in report.problems}
    assert "DCASE style" in reasons["my_own_recording.wav"] and "train" in reasons["loose.wav"]


def test_plain_folders_name_the_class_and_set_normal_or_anomaly(project, tmp_path):
    root = tmp_path / "site"
    write_wav(root / "normal" / "a.wav", tone(0.5, freq=100))
    write_wav(root / "abnormal" / "b.flac", tone(0.5, freq=200), fmt="FLAC")
    write_wav(root / "leak" / "night" / "c.wav", tone(0.5, freq=300))
    write_wav(root / "d.wav", tone(0.5, freq=400))
    (root / "readme.txt").write_text("not imported: not an audio file name")

    report = import_source(project, root)

    assert report.format == "folder" and report.added == 4
    clips = {c.clip_id: c for c in project.clips()}
    assert (clips["normal/a"].label, clips["normal/a"].attributes) == ("normal", {"class": "normal"})
    assert (clips["abnormal/b"].label, clips["abnormal/b"].format) == ("anomaly", "FLAC/PCM_16")
    assert (clips["leak/night/c"].label, clips["leak/night/c"].attributes) == (None, {"class": "leak"})
    assert (clips["d"].label, clips["d"].attributes) == (None, {})


def test_dropped_files_import_and_bad_ones_are_named(project, tmp_path):
    good = write_wav(tmp_path / "drop" / "line3.wav", tone(2.0, sr=48000), sr=48000)
    stereo = write_wav(tmp_path / "drop" / "line4.ogg", tone(1.0, channels=2), fmt="OGG", subtype="VORBIS")
    text = tmp_path / "drop" / "report.pdf"
    text.write_text("%PDF-1.4 not audio")

    report = import_files(project, [good, stereo, text, tmp_path / "drop" / "gone.wav"])

    assert report.added == 2 and len(report.problems) == 2
    clip = project.clip("line3")
    assert (clip.sample_rate, clip.duration_s, clip.channels) == (48000, 2.0, 1)
    assert project.clip("line4").channels == 2


def test_the_same_audio_under_another_name_is_not_imported_twice(project, tmp_path):
    original = write_wav(tmp_path / "a" / "x.wav", tone(1.0))
    copy = tmp_path / "b" / "x_copy.wav"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    other = write_wav(tmp_path / "c" / "x.wav", tone(1.0, freq=880))  # same id as the first, other audio

    assert import_files(project, [original]).added == 1
    report = import_files(project, [copy, other])

    assert report.added == 1 and report.already_present == 1
    ids = sorted(c.clip_id for c in project.clips())
    assert ids[0] == "x" and ids[1].startswith("x~")
    # The report names the project's clip for each file, the one already held included (a dropped file
    # that is already in the project is shown, not lost).
    assert report.clip_ids == ["x", ids[1]]


def test_dropped_files_are_marked_as_the_inbox(project, tmp_path):
    dropped = write_wav(tmp_path / "in" / "drop.wav", tone(1.0))
    imported = write_wav(tmp_path / "in" / "other.wav", tone(1.0, freq=880))
    import_files(project, [dropped], source="inbox")
    import_files(project, [imported])
    assert project.clip_sources() == {"drop": "inbox", "other": "files"}


def test_metadata_rows_with_problems_are_named_by_line_and_the_rest_imported(project, tmp_path):
    root = tmp_path / "meta"
    for name, freq in (("a", 100), ("b", 200), ("c", 300), ("d", 400)):
        write_wav(root / f"{name}.wav", tone(0.5, freq=freq))
    (root / "metadata.csv").write_text(
        "relative_path,machine_type,section_id,domain,split,is_anomaly,anomaly_regions,site\n"
        'a.wav,valve,0,source,test,1,"[[0.1, 0.2]]",north\n'
        "b.wav,valve,0,elsewhere,test,0,[],north\n"
        "c.wav,valve,0,target,test,0,[[0.3]],north\n"
        "missing.wav,valve,0,target,test,0,[],north\n"
        "d.wav,valve,1,target,train,false,,south\n"
    )

    report = import_source(project, root)

    assert report.added == 2
    reasons = {p.where: p.reason for p in report.problems}
    assert "elsewhere" in reasons["metadata.csv line 3"]
    assert "anomaly_regions" in reasons["metadata.csv line 4"]
    assert "file not found" in reasons["metadata.csv line 5"]
    a, d = project.clip("a"), project.clip("d")
    assert (a.section_id, a.label, a.anomaly_regions, a.attributes) == (
        "00",
        "anomaly",
        ((0.1, 0.2),),
        {"site": "north"},
    )
    assert (d.section_id, d.domain, d.split, d.label) == ("01", "target", "train", "normal")


def test_a_metadata_file_without_paths_is_a_clear_error(project, tmp_path):
    (tmp_path / "metadata.csv").write_text("name,label\nx,normal\n")
    with pytest.raises(EarmarkError, match="relative_path"):
        import_source(project, tmp_path)


def test_cancelling_an_import_keeps_what_was_checked_and_a_second_run_finishes(project, tmp_path):
    root = tmp_path / "many"
    for n in range(12):
        write_wav(root / f"clip_{n:02d}.wav", tone(0.2, freq=100 + 50 * n))

    with pytest.raises(Cancelled):
        import_source(project, root, progress=RecordingProgress(cancel_after=5))
    kept = project.count_clips()
    assert 0 < kept < 12

    report = import_source(project, root)
    assert report.already_present == kept and report.added == 12 - kept
    assert project.count_clips() == 12


def test_progress_is_reported_for_every_file(project, tmp_path):
    root = tmp_path / "some"
    for n in range(5):
        write_wav(root / f"{n}.wav", (np.random.default_rng(n).uniform(-0.1, 0.1, 1600)).astype(np.float32))
    progress = RecordingProgress()

    import_source(project, root, progress=progress)

    assert [u[:2] for u in progress.updates] == [(0, 5)] + [(n, 5) for n in range(1, 6)]


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    section=st.integers(0, 99),
    domain=st.sampled_from(["source", "target"]),
    split=st.sampled_from(["train", "test"]),
    label=st.sampled_from(["normal", "anomaly"]),
    index=st.integers(0, 9999),
    attributes=st.dictionaries(_token.filter(lambda t: not t.isdigit()), _token, max_size=4),
)
def test_any_modern_dcase_name_parses_back_to_its_parts(section, domain, split, label, index, attributes):
    pairs = "_".join(f"{key}_{value}" for key, value in attributes.items()) or "noAttribute"
    parsed = parse_name(f"section_{section:02d}_{domain}_{split}_{label}_{index:04d}_{pairs}")
    assert (parsed.section_id, parsed.domain, parsed.split, parsed.label, parsed.index) == (
        f"{section:02d}",
        domain,
        split,
        label,
        f"{index:04d}",
    )
    assert parsed.attributes == attributes


def test_esc50_is_checked_against_the_disk_and_keeps_class_and_fold(project, tmp_path):
    root = tmp_path / "ESC-50-master"
    rows = [("1-100-A-0.wav", 1, 0, "dog"), ("2-101-A-1.wav", 2, 1, "rain"), ("3-102-A-0.wav", 3, 0, "dog")]
    for index, (name, *_) in enumerate(rows[:2]):
        write_wav(root / "audio" / name, tone(0.5, freq=300 + 100 * index))
    write_wav(root / "audio" / "5-999-A-9.wav", tone(0.5, freq=900))  # on disk, in no row
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows([[name, fold, target, category, "False", "100", "A"] for name, fold, target, category in rows])

    assert detect_format(root) == "esc50"
    report = import_source(project, root)
    assert report.added == 2
    assert report.checks == [
        "ESC-50 check: 3 metadata row(s), 3 audio file(s); 2 match, 1 row(s) without a file, "
        "1 file(s) without a row; 2 class(es), 2 fold(s)"
    ]
    assert sorted(str(p) for p in report.problems) == [
        "audio/5-999-A-9.wav: not listed in meta/esc50.csv",
        "meta/esc50.csv line 4: 3-102-A-0.wav: listed, but not in audio/",
    ]
    clip = project.clip("1-100-A-0")
    assert clip.attributes["class"] == "dog" and clip.attributes["fold"] == "1"


def test_emodb_reads_the_emotion_from_the_sixth_character(project, tmp_path):
    root = tmp_path / "emodb"
    for index, name in enumerate(["03a01Wa", "03a01Fa", "10b02Nc", "16a05Tb"]):
        write_wav(root / "wav" / f"{name}.wav", tone(0.3, freq=200 + 50 * index))
    assert detect_format(root) == "emodb"
    write_wav(root / "wav" / "notes.wav", tone(0.3, freq=700))  # not an EmoDB name: reported, left out
    report = import_source(project, root, "emodb")
    assert report.added == 4 and [p.where for p in report.problems] == ["wav/notes.wav"]
    assert report.checks == [
        "EmoDB check: 5 audio file(s), 4 with an EmoDB name, 1 without; 3 speaker(s); "
        "anger 1, happiness 1, neutral 1, sadness 1"
    ]
    assert {c.clip_id: c.attributes["class"] for c in project.clips()} == {
        "03a01Wa": "anger",
        "03a01Fa": "happiness",
        "10b02Nc": "neutral",
        "16a05Tb": "sadness",
    }
    assert project.clip("10b02Nc").attributes["speaker"] == "10"
