"""AST and BEATs as users get them: tiny models saved in the official formats, set up with `earmark weights
add`, loaded through the same code, embedding clips on their patch grids and feeding `knn` and
`patch_memory`; the AST front end is the one the published weights were trained on; bad weights fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import weights
from engine.audio.feature_cache import FeatureCache
from engine.cli import main
from engine.detectors.registry import detector_class, make_config
from engine.encoders import make_encoder
from engine.encoders.ast import AstEncoder
from engine.errors import EarmarkError
from tests.helpers import tiny_ast, tiny_beats, write_wav

GROUP = "fan/section_00"


@pytest.fixture
def ast_weights(tmp_path):
    return str(tiny_ast(tmp_path / "ast-tiny"))


@pytest.fixture
def beats_weights(tmp_path):
    return str(tiny_beats(tmp_path / "BEATs_tiny.pt"))


def _clips(project, split=None):
    return [c for c in project.clips() if c.group == GROUP and (split is None or c.split == split)]


def test_the_ast_front_end_matches_transformers_own_feature_extractor(ast_weights):
    from transformers import ASTFeatureExtractor

    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(16000 * 3) + 0.05).astype(np.float32)  # with a DC offset
    ours = AstEncoder(FeatureCache(None), location=ast_weights)
    mine = ours.window_input(ours.features(torch.from_numpy(audio)))
    theirs = ASTFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt")["input_values"][0]
    assert mine.shape == theirs.shape == (1024, 128)
    # Equal up to float rounding (the original removes the waveform's mean first; Kaldi's per-frame DC
    # removal makes that a no-op but for rounding in the quietest bins).
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-3)
    assert np.abs(mine.numpy() - theirs.numpy()).mean() < 1e-5


@pytest.mark.parametrize("name", ["ast", "beats"])
def test_weights_added_once_load_and_embed_clips_on_their_patch_grid(name, request, toy_project):
    path = request.getfixturevalue(f"{name}_weights")
    weights.add(name, path)
    assert weights.configured()[name] == path
    encoder = make_encoder(name, FeatureCache(None), layers=(1, -1))
    clips = _clips(toy_project, "test")[:2]
    embeddings = encoder.encode(clips, patches=True)
    rows, width = (12, 32) if name == "ast" else (8, 32)
    for clip in clips:
        e = embeddings[clip.clip_id]
        layers, f, t, d = e.patches.shape
        assert (layers, f, d) == (2, rows, width) and t >= 1
        assert e.clip.shape == (width,) and e.frames.shape == (t, width)
        assert e.freq_spans_hz.shape == (f, 2) and np.all(np.diff(e.freq_spans_hz[:, 0]) > 0)
        assert 20 - 1e-6 <= e.freq_spans_hz.min() and e.freq_spans_hz.max() <= 8000 + 1e-6
        assert np.all(np.diff(e.time_spans_s[:, 0]) > 0) and e.time_spans_s[-1, 1] <= clip.duration_s + 0.05
        np.testing.assert_allclose(e.frame_times, e.time_spans_s.mean(axis=1))


@pytest.mark.parametrize("name", ["ast", "beats"])
def test_a_recording_longer_than_one_window_is_covered_to_its_end(name, request, tmp_path):
    path = request.getfixturevalue(f"{name}_weights")
    weights.add(name, path)
    encoder = make_encoder(name, FeatureCache(None))
    rng = np.random.default_rng(1)
    [embedding] = encoder.embed_waveforms([0.1 * rng.standard_normal(16000 * 25).astype(np.float32)], patches=True)
    starts = embedding.time_spans_s[:, 0]
    assert np.all(np.diff(starts) > 0), "windows follow each other in time"
    assert 24.0 <= embedding.time_spans_s[-1, 1] <= 25.0 + 0.05, "the last window reaches the end"
    step = np.median(np.diff(starts))
    assert np.max(np.diff(starts)) <= 2 * step, "no gap between windows"


@pytest.mark.parametrize("name", ["ast", "beats"])
@pytest.mark.parametrize("detector", ["knn", "patch_memory"])
def test_pretrained_encoders_feed_knn_and_patch_memory(name, detector, request, toy_project, tmp_path):
    weights.add(name, request.getfixturevalue(f"{name}_weights"))
    config = make_config(detector, {"encoder": name})
    model = detector_class(detector)(config, cache=FeatureCache(tmp_path / "features"))
    model.fit(_clips(toy_project))
    test = _clips(toy_project, "test")
    detections = model.score(test)
    assert [d.clip_id for d in detections] == [c.clip_id for c in test]
    assert all(np.isfinite(d.score) and len(d.frame_scores) for d in detections)
    rows = 12 if name == "ast" else 8
    assert all(d.anomaly_map.shape == (rows, len(d.frame_times)) for d in detections)
    if detector == "knn":  # each frame's distance split over the grid's rows: a column's mean is the frame score
        for d in detections:
            np.testing.assert_allclose(
                d.anomaly_map.mean(axis=0), d.frame_scores, rtol=1e-3, atol=1e-4 * float(np.abs(d.frame_scores).max())
            )


def test_layers_are_chosen_from_the_command_line_and_checked_against_the_model(ast_weights):
    weights.add("ast", ast_weights)
    config = make_config("patch_memory", {"encoder": "ast", "layers": "1,-1"})
    assert config.layers == (1, -1)
    assert detector_class("patch_memory")(config, cache=FeatureCache(None)).encoder.layers == (1, -1)
    with pytest.raises(EarmarkError, match="whole numbers"):
        make_config("patch_memory", {"layers": "last"})
    with pytest.raises(EarmarkError, match="has layers 1 to 2"):
        detector_class("patch_memory")(
            make_config("patch_memory", {"encoder": "ast", "layers": "5"}), cache=FeatureCache(None)
        )


def test_a_missing_or_wrong_ast_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EarmarkError, match="no ast weights are set up.*earmark weights add ast"):
        make_encoder("ast", FeatureCache(None))
    with pytest.raises(EarmarkError, match="not found.*earmark weights add ast"):
        weights.add("ast", str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EarmarkError, match="not an AST model folder.*huggingface.co"):
        weights.add("ast", str(tmp_path / "empty"))
    broken = tiny_ast(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(EarmarkError, match="cannot load AST weights.*earmark weights add ast"):
        weights.add("ast", str(broken))
    assert weights.configured() == {}, "nothing wrong is remembered"


def test_a_model_id_not_in_the_cache_is_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EarmarkError, match="downloads are off"):
        weights.add("ast", "MIT/ast-finetuned-audioset-10-10-0.4593")


def test_a_wrong_beats_file_is_a_clear_error(tmp_path, ast_weights):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for bad in (tmp_path / "missing.pt", text):
        with pytest.raises(EarmarkError, match="earmark weights add beats"):
            weights.add("beats", str(bad))
    with pytest.raises(EarmarkError, match="earmark weights add beats"):
        weights.add("beats", ast_weights)  # an AST folder is not a BEATs checkpoint
    assert weights.configured() == {}


def test_the_weights_command_adds_lists_and_checks(capsys, ast_weights, beats_weights, tmp_path):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "ast: not set up" in out and "beats: not set up" in out and "huggingface.co" in out
    assert main(["weights", "add", "ast", ast_weights]) == 0
    assert main(["weights", "add", "beats", beats_weights]) == 0
    assert "AST, 2 layers of width 32" in capsys.readouterr().out
    assert main(["weights", "check"]) == 0
    out = capsys.readouterr().out
    assert "ast: ok" in out and "beats: ok, BEATs, 2 layers of width 32" in out
    # Weights that go bad after they were added: `check` says so and fails.
    (tmp_path / "BEATs_tiny.pt").write_bytes(b"damaged")
    assert main(["weights", "check", "beats"]) == 1
    assert "beats: failed" in capsys.readouterr().out
    write_wav(tmp_path / "x.wav")
    assert main(["weights", "add", "beats", str(tmp_path / "x.wav")]) == 1
