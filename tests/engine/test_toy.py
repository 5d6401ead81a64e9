"""The synthetic data set keeps the promises of its contract: counts, label policy, regions, domain shift."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.audio import scan
from engine.cli import main
from engine.data.toy import MACHINES, NOISES, ToyConfig, counts, generate, plan, render, section_sound
from engine.data.toy_faults import signature_db
from engine.data.toy_sounds import ANOMALY_KINDS, STATIONARY_KINDS, TRANSIENT_KINDS, rms
from engine.errors import EarmarkError
from engine.jobs import Cancelled, RecordingProgress
from tests.conftest import SMALL_TOY


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_counts_follow_dcase_2025_times_scale_with_floors():
    assert counts(1.0) == {"source_train": 990, "target_train": 10, "test_each": 50, "supplemental_each": 50}
    assert counts(0.05) == {"source_train": 50, "target_train": 3, "test_each": 5, "supplemental_each": 3}
    assert counts(0.001)["source_train"] == 1 and counts(0.001)["target_train"] == 3


def test_metadata_has_the_contract_columns_and_one_row_per_file(toy_dataset):
    rows = _rows(toy_dataset)
    required = {
        "clip_id",
        "relative_path",
        "machine_type",
        "section_id",
        "domain",
        "split",
        "label",
        "is_anomaly",
        "speed_level",
        "load_level",
        "mic_position_id",
        "noise_id",
        "snr_db",
        "supp_type",
        "anomaly_regions",
        "qa_rms",
        "qa_peak",
        "qa_clipping_ratio",
        "qa_silence_ratio",
    }
    assert required <= set(rows[0])
    assert len({r["clip_id"] for r in rows}) == len(rows)
    files = sorted(p.relative_to(toy_dataset).as_posix() for p in toy_dataset.rglob("*.wav"))
    assert files == sorted(r["relative_path"] for r in rows)


def test_counts_per_section_and_label_policy(toy_dataset):
    rows = _rows(toy_dataset)
    n = counts(SMALL_TOY.scale)
    per = Counter((r["machine_type"], r["section_id"], r["domain"], r["split"], r["label"]) for r in rows)
    for machine in SMALL_TOY.machines:
        for section in ("00", "01"):
            assert per[(machine, section, "source", "train", "normal")] == n["source_train"]
            assert per[(machine, section, "target", "train", "normal")] == n["target_train"] >= 3
            for domain in ("source", "target"):
                assert per[(machine, section, domain, "test", "normal")] == n["test_each"]
                assert per[(machine, section, domain, "test", "anomaly")] == n["test_each"]
    assert {r["label"] for r in rows if r["split"] == "train"} == {"normal"}
    assert {r["is_anomaly"] for r in rows if r["split"] == "train"} == {"0"}
    supplemental = [r for r in rows if r["split"] == "supplemental"]
    assert Counter(r["supp_type"] for r in supplemental) == {
        "noise": n["supplemental_each"] * 6,
        "machine": n["supplemental_each"] * 6,
    }
    assert all(r["noise_id"] == "" for r in supplemental if r["supp_type"] == "machine")


def test_anomaly_regions_lie_inside_the_clip_and_only_on_anomalies(toy_dataset):
    for row in _rows(toy_dataset):
        regions = json.loads(row["anomaly_regions"])
        if row["label"] == "anomaly":
            assert regions and row["anomaly_type"]
            assert all(0 <= start < end <= float(row["duration_s"]) for start, end in regions)
        else:
            assert regions == [] and row["anomaly_type"] == ""


def test_every_anomaly_kind_is_made_and_every_section_tests_both_families(toy_dataset):
    anomalies = [r for r in _rows(toy_dataset) if r["label"] == "anomaly"]
    assert {r["anomaly_type"] for r in anomalies} == set(ANOMALY_KINDS)
    for row in anomalies:
        family = "transient" if row["anomaly_type"] in TRANSIENT_KINDS else "stationary"
        assert row["anomaly_kind"] == family
        if family == "stationary":  # a whole-clip fault spans the whole clip
            assert json.loads(row["anomaly_regions"]) == [[0.0, float(row["duration_s"])]]
    families = Counter((r["machine_type"], r["section_id"], r["anomaly_kind"]) for r in anomalies)
    assert all(
        families[(m, s, f)] >= 2 for m in SMALL_TOY.machines for s in ("00", "01") for f in ("transient", "stationary")
    )
    assert {r["anomaly_kind"] for r in _rows(toy_dataset) if r["label"] != "anomaly"} == {""}


def test_an_imported_clip_knows_its_anomaly_family(toy_project):
    anomalies = toy_project.clips(label="anomaly")
    assert {c.attributes["anomaly_kind"] for c in anomalies} == {"transient", "stationary"}
    assert all(
        (c.attributes["anomaly_type"] in STATIONARY_KINDS) == (c.attributes["anomaly_kind"] == "stationary")
        for c in anomalies
    )
    assert not any("anomaly_kind" in c.attributes for c in toy_project.clips(label="normal"))


def test_toy_anomalies_stationary_writes_the_five_whole_clip_faults(tmp_path, capsys):
    out = tmp_path / "faults"
    assert (
        main(
            [
                "toy",
                str(out),
                "--anomalies",
                "stationary",
                "--scale",
                "0.01",
                "--duration",
                "1",
                "--sections",
                "1",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    anomalies = [r for r in _rows(out) if r["label"] == "anomaly"]
    assert {r["anomaly_type"] for r in anomalies} == set(STATIONARY_KINDS)
    for machine in MACHINES:  # every machine type gets every fault
        assert {r["anomaly_type"] for r in anomalies if r["machine_type"] == machine} == set(STATIONARY_KINDS)
    assert {r["anomaly_kind"] for r in anomalies} == {"stationary"}
    assert all(json.loads(r["anomaly_regions"]) == [[0.0, 1.0]] for r in anomalies)
    assert all((out / r["relative_path"]).is_file() for r in anomalies)


def test_toy_anomalies_transient_writes_only_the_four_events(tmp_path, capsys):
    out = tmp_path / "events"
    assert (
        main(
            [
                "toy",
                str(out),
                "--anomalies",
                "transient",
                "--scale",
                "0.01",
                "--duration",
                "1",
                "--sections",
                "1",
                "--machines",
                "fan",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    anomalies = [r for r in _rows(out) if r["label"] == "anomaly"]
    assert {r["anomaly_type"] for r in anomalies} == set(TRANSIENT_KINDS)
    assert {r["anomaly_kind"] for r in anomalies} == {"transient"}
    assert all(json.loads(r["anomaly_regions"])[0] != [0.0, 1.0] for r in anomalies)


#: The direction each fault's signature (toy_faults.signature_db) moves in, by machine where it differs: a
#: choked fan loses its highs, a clogged valve orifice and a starved bearing gain them.
_DIRECTION = {("clogging", "fan"): -1.0}


@pytest.mark.parametrize("kind", STATIONARY_KINDS)
def test_a_stationary_fault_changes_its_signature_yet_not_the_loudness(kind):
    config = ToyConfig(scale=0.01, seed=6, duration_s=2.0, sections=1, anomalies="stationary")
    for machine in MACHINES:
        clips = [p for p in plan(config) if p.machine == machine and p.split == "test" and p.label == "normal"]
        changes = []
        for item in clips[:3] + clips[-3:]:  # source and target
            normal, _ = render(item, config)
            broken, regions = render(dataclasses.replace(item, anomaly=kind), config)
            assert regions == [(0.0, 2.0)]
            # The fault is a change of the same clip: the normal signal lies beneath it, sample for sample.
            assert np.corrcoef(normal, broken)[0, 1] > 0.8, (kind, machine)
            assert 20 * np.log10(rms(broken) / rms(normal)) <= 3.0, (kind, machine)
            sound = section_sound(item, config)
            change = signature_db(kind, broken, sound, item.speed, config.sample_rate) - signature_db(
                kind, normal, sound, item.speed, config.sample_rate
            )
            changes.append(change * _DIRECTION.get((kind, machine), 1.0))
        # A few dB (clogging: half a dB per octave of tilt) on the typical clip, and some on every clip of the
        # source domain (SNR 10-30 dB); in the target domain's loud noise (0-20 dB) a fault may drown.
        typical, least = (0.5, 0.2) if kind == "clogging" else (2.0, 1.0)
        assert np.median(changes) >= typical, (kind, machine, changes)
        assert min(changes[:3]) >= least, (kind, machine, changes)


def test_training_and_test_counts_can_be_set_apart_from_the_scale():
    config = ToyConfig(scale=0.01, sections=1, machines=("fan",), train_counts=(10, 3), test_each=2)
    per = Counter((p.domain, p.split, p.label) for p in plan(config))
    assert per[("source", "train", "normal")] == 10 and per[("target", "train", "normal")] == 3
    assert per[("source", "test", "anomaly")] == per[("target", "test", "normal")] == 2
    kinds = {p.anomaly for p in plan(config) if p.label == "anomaly"}
    assert kinds & set(TRANSIENT_KINDS) and kinds & set(STATIONARY_KINDS)


def test_anomalies_change_the_audio_inside_their_region_not_outside():
    config = ToyConfig(scale=0.01, seed=5, duration_s=4.0, sections=1, machines=("fan",), anomalies="transient")
    for item in [p for p in plan(config) if p.label == "anomaly"][:4]:
        samples, regions = render(item, config)
        normal, _ = render(item.__class__(**{**item.__dict__, "anomaly": None}), config)
        inside = np.zeros(len(samples), bool)
        for start, end in regions:
            inside[int(start * 16000) : int(end * 16000)] = True
        changed = np.abs(samples - normal) > 1e-4
        assert changed[inside].mean() > 0.5, item.anomaly
        assert changed[~inside].mean() < 0.05, item.anomaly


def test_target_domain_is_noisier_with_disjoint_noises_and_microphones(toy_dataset):
    rows = [r for r in _rows(toy_dataset) if r["split"] in ("train", "test")]
    by_domain = {d: [r for r in rows if r["domain"] == d] for d in ("source", "target")}
    snr = {d: [float(r["snr_db"]) for r in by_domain[d]] for d in by_domain}
    assert all(10 <= s <= 30 for s in snr["source"]) and all(0 <= s <= 20 for s in snr["target"])
    assert np.mean(snr["target"]) < np.mean(snr["source"]) - 5
    noises = {d: {r["noise_id"] for r in by_domain[d]} for d in by_domain}
    mics = {d: {r["mic_position_id"] for r in by_domain[d]} for d in by_domain}
    assert noises["source"] <= set(NOISES["source"]) and noises["target"] <= set(NOISES["target"])
    assert not noises["source"] & noises["target"] and not mics["source"] & mics["target"]


def test_operating_conditions_change_the_sound():
    config = ToyConfig(scale=0.01, seed=2, duration_s=2.0, sections=1, machines=("fan",))
    item = next(p for p in plan(config) if p.split == "train")
    spectra = []
    for speed in (1, 3):
        variant = item.__class__(**{**item.__dict__, "speed": speed, "noise": None, "snr_db": None})
        samples, _ = render(variant, config)
        spectra.append(np.abs(np.fft.rfft(samples)))
    peak_slow, peak_fast = (int(np.argmax(s[100:])) + 100 for s in spectra)
    assert peak_fast / peak_slow == pytest.approx(1.2 / 0.85, rel=0.05)  # blade-pass follows shaft speed


def test_qa_columns_match_the_files(toy_dataset):
    for row in _rows(toy_dataset)[::25]:
        _, qa = scan(toy_dataset / row["relative_path"])
        assert float(row["qa_rms"]) == pytest.approx(qa.rms, abs=0.05)
        assert float(row["qa_peak"]) == pytest.approx(qa.peak, abs=1e-3)


def test_the_same_seed_gives_the_same_files_with_any_number_of_workers(tmp_path):
    config = ToyConfig(scale=0.01, seed=9, duration_s=0.5, sections=1, machines=("valve",))
    generate(tmp_path / "a", config, workers=1)
    generate(tmp_path / "b", config, workers=2)
    generate(tmp_path / "c", ToyConfig(scale=0.01, seed=10, duration_s=0.5, sections=1, machines=("valve",)))
    assert (tmp_path / "a" / "metadata.csv").read_text() == (tmp_path / "b" / "metadata.csv").read_text()
    first = _rows(tmp_path / "a")[0]["relative_path"]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    assert _rows(tmp_path / "c") != _rows(tmp_path / "a")


def test_noise_only_clips_hold_no_machine():
    config = ToyConfig(scale=0.01, seed=4, duration_s=1.0, sections=1, machines=("bearing",))
    items = plan(config)
    noise = next(p for p in items if p.supp_type == "noise")
    machine = next(p for p in items if p.supp_type == "machine")
    assert rms(render(noise, config)[0]) > 0 and rms(render(machine, config)[0]) > 0
    assert noise.snr_db is None and machine.noise is None


def test_cancelling_leaves_no_metadata_behind(tmp_path):
    progress = RecordingProgress(cancel_after=5)
    with pytest.raises(Cancelled):
        generate(tmp_path / "t", ToyConfig(scale=0.01, duration_s=0.5, sections=1), progress, workers=1)
    assert not (tmp_path / "t" / "metadata.csv").exists()


def test_bad_settings_are_refused():
    with pytest.raises(EarmarkError, match="scale"):
        ToyConfig(scale=0)
    with pytest.raises(EarmarkError, match="machine types"):
        ToyConfig(machines=("toaster",))
    with pytest.raises(EarmarkError, match="anomalies must be one of transient, stationary, all"):
        ToyConfig(anomalies="gradual")
    with pytest.raises(EarmarkError, match="training counts"):
        ToyConfig(train_counts=(10, 0))
    with pytest.raises(EarmarkError, match="test clips"):
        ToyConfig(test_each=0)
