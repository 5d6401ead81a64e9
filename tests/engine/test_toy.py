"""The synthetic data set keeps the promises of its contract: counts, label policy, regions, domain shift."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.audio import scan
from engine.data.toy import NOISES, ToyConfig, counts, generate, plan, render
from engine.data.toy_sounds import rms
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
    required = {"clip_id", "relative_path", "machine_type", "section_id", "domain", "split", "label", "is_anomaly",
                "speed_level", "load_level", "mic_position_id", "noise_id", "snr_db", "supp_type",
                "anomaly_regions", "qa_rms", "qa_peak", "qa_clipping_ratio", "qa_silence_ratio"}
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
        "noise": n["supplemental_each"] * 6, "machine": n["supplemental_each"] * 6}
    assert all(r["noise_id"] == "" for r in supplemental if r["supp_type"] == "machine")


def test_anomaly_regions_lie_inside_the_clip_and_only_on_anomalies(toy_dataset):
    for row in _rows(toy_dataset):
        regions = json.loads(row["anomaly_regions"])
        if row["label"] == "anomaly":
            assert regions and row["anomaly_type"]
            assert all(0 <= start < end <= float(row["duration_s"]) for start, end in regions)
        else:
            assert regions == [] and row["anomaly_type"] == ""


def test_every_anomaly_kind_is_made(toy_dataset):
    kinds = {r["anomaly_type"] for r in _rows(toy_dataset) if r["label"] == "anomaly"}
    assert kinds == {"impulse_burst", "band_tone", "bearing_rattle", "dropout"}


def test_anomalies_change_the_audio_inside_their_region_not_outside():
    config = ToyConfig(scale=0.01, seed=5, duration_s=4.0, sections=1, machines=("fan",))
    for item in [p for p in plan(config) if p.label == "anomaly"][:4]:
        samples, regions = render(item, config)
        normal, _ = render(item.__class__(**{**item.__dict__, "anomaly": None}), config)
        inside = np.zeros(len(samples), bool)
        for start, end in regions:
            inside[int(start * 16000):int(end * 16000)] = True
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
