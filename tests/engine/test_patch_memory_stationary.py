"""The patch memory on stationary faults: a patch is matched only with memory patches of nearby bands, a
global term of band statistics finds a change of the whole recording that no single patch shows, its
thresholds include that term, and a model saved before it still scores as it was fitted."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import signal

from engine.audio.feature_cache import FeatureCache
from engine.data.clip import Clip
from engine.detectors.patch_memory import PatchMemoryConfig, PatchMemoryDetector
from engine.detectors.patch_memory.memory import max_cosine
from engine.detectors.registry import load_model
from tests.helpers import write_wav

SR = 16000


def _machine(seed: int, worn: bool = False) -> np.ndarray:
    """A fan-like recording: a 25 Hz shaft with blade tones, and broadband flow noise; with `worn`, a rough
    bearing race raises the floor between 3 and 6 kHz by a few dB over the whole clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(4 * SR) / SR
    x = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    x = x + 0.3 * rng.standard_normal(len(t)) * rng.uniform(0.9, 1.1)
    if worn:
        floor = signal.sosfilt(
            signal.butter(4, [3000, 6000], "bandpass", fs=SR, output="sos"), rng.standard_normal(len(t))
        )
        x = x + 0.12 * floor
    return (0.1 * x * rng.uniform(0.7, 1.4)).astype(np.float32)  # the recording level varies by +-3 dB


def _clip(tmp_path, name: str, audio: np.ndarray, domain: str = "target", split: str = "train") -> Clip:
    path = write_wav(tmp_path / f"{name}.wav", audio)
    return Clip(name, str(path), SR, len(audio) / SR, "fan", "00", domain, split, "normal")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stationary")
    normals = [_clip(folder, f"normal{i}", _machine(i), domain=("target", "source")[i % 2]) for i in range(8)]
    unseen = [_clip(folder, f"unseen{i}", _machine(100 + i), split="test") for i in range(6)]
    worn = [_clip(folder, f"worn{i}", _machine(200 + i, worn=True), split="test") for i in range(6)]
    return normals, unseen, worn


def test_a_patch_is_matched_only_with_memory_patches_of_nearby_bands():
    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(60, 8, generator=generator), dim=1)
    memory = torch.nn.functional.normalize(torch.randn(90, 8, generator=generator), dim=1)
    q_band, m_band = torch.arange(60) % 6, torch.arange(90) % 9
    sims = queries @ memory.T
    near = sims.masked_fill((q_band[:, None] - m_band[None]).abs() > 1, -1.0).max(dim=1).values
    for budget_mb in (1e-4, 64.0):
        torch.testing.assert_close(
            max_cosine(queries, memory, budget_mb, query_band=q_band, memory_band=m_band, band_window=1), near
        )
        torch.testing.assert_close(
            max_cosine(queries, memory, budget_mb, query_band=q_band, memory_band=m_band, band_window=-1),
            sims.max(dim=1).values,
        )


def test_a_worn_bearing_that_raises_the_floor_over_the_whole_clip_scores_above_every_unseen_normal(recordings):
    normals, unseen, worn = recordings
    detector = PatchMemoryDetector(cache=FeatureCache(None))
    detector.fit(normals)
    normal_scores = [d.score for d in detector.score(unseen)]
    worn_detections = detector.score(worn)
    assert min(d.score for d in worn_detections) > max(normal_scores)
    assert sum(d.decision for d in worn_detections) >= 4, "most worn clips are flagged"
    assert sum(score > detector.threshold for score in normal_scores) <= 1, "the unseen normals are not"
    # A dropped recording of no known domain is judged against both domains' training scores together
    [dropped] = detector.score([dataclasses.replace(worn[0], domain=None)])
    assert dropped.score > max(normal_scores)
    # The patch term alone (the paper's search) finds a near-identical patch for each worn patch
    patches_only = PatchMemoryDetector(PatchMemoryConfig(global_weight=0.0, band_window=-1), cache=FeatureCache(None))
    patches_only.fit(normals)
    alone = [d.score for d in patches_only.score(worn)]
    assert min(alone) < max(d.score for d in patches_only.score(unseen))
    # ...while the map of the whole detector still has the patch term's grid and units for the view
    assert worn_detections[0].anomaly_map.shape == (
        len(worn_detections[0].map_freq_spans_hz),
        len(worn_detections[0].map_time_spans_s),
    )


def test_the_held_out_scores_carry_the_global_term_as_a_test_clip_is_scored(recordings, tmp_path):
    normals, unseen, worn = recordings
    detector = PatchMemoryDetector(cache=FeatureCache(None))
    detector.fit(normals)
    # A training normal is held out of the global bank as it is of the patch memory: its held-out score is
    # on the scale of unseen normals' scores, not of a clip that finds itself in the bank.
    held_out = np.array(list(detector.held_out_by_clip.values()))
    unseen_scores = np.array([d.score for d in detector.score(unseen)])
    assert len(held_out) == len(normals)
    assert abs(np.median(held_out) - np.median(unseen_scores)) < np.std(np.r_[held_out, unseen_scores]) * 1.5
    # Enrolling a clip adds it to both: the threshold is learnt again from scores with both terms
    enrolled = _clip(tmp_path, "enrolled", _machine(300))
    bank = len(detector.global_term.bank)
    detector.enrol([enrolled])
    assert len(detector.global_term.bank) == bank + 1 and detector.clips == len(normals) + 1
    assert min(d.score for d in detector.score(worn)) > detector.threshold


def test_a_model_saved_before_the_global_term_scores_as_it_was_fitted(recordings, tmp_path):
    normals, unseen, _ = recordings
    detector = PatchMemoryDetector(cache=FeatureCache(None))
    detector.fit(normals)
    folder = detector.save(tmp_path / "model")
    # What an earlier version wrote: no band window or global weight in the settings, no global state
    state = {
        k: v
        for k, v in load_file(str(folder / "model.safetensors")).items()
        if k not in ("patch_stats", "global_stats", "global_bank")
    }
    save_file(state, str(folder / "model.safetensors"))
    meta = json.loads((folder / "model.json").read_text())
    for name in ("band_window", "global_weight"):
        meta["config"].pop(name)
    (folder / "model.json").write_text(json.dumps(meta))
    loaded = load_model(folder, cache=FeatureCache(None))
    assert (loaded.config.band_window, loaded.config.global_weight) == (-1, 0.0)
    embeddings = loaded.encoder.encode(unseen, patches=True)
    raw = [loaded.map_of(embeddings[c.clip_id])[1] for c in unseen]
    np.testing.assert_allclose([d.score for d in loaded.score(unseen)], raw, rtol=1e-6)
