"""Helpers that write small audio files for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine.jobs import Progress


def tone(
    seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, amplitude: float = 0.5, channels: int = 1
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = amplitude * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def write_wav(
    path: Path, samples: np.ndarray | None = None, sr: int = 16000, subtype: str = "PCM_16", fmt: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(sr=sr) if samples is None else samples, sr, subtype=subtype, format=fmt)
    return path


#: The BEATs_iter3 settings, scaled down so that a model builds and runs in milliseconds.
TINY_BEATS = {
    "input_patch_size": 16,
    "embed_dim": 16,
    "encoder_embed_dim": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_embed_dim": 64,
    "conv_pos": 8,
    "conv_pos_groups": 4,
    "relative_position_embedding": True,
    "gru_rel_pos": True,
    "deep_norm": True,
    "layer_norm_first": False,
    "max_distance": 800,
}


def tiny_ast(folder: Path, layers: int = 2) -> Path:
    """A tiny Audio Spectrogram Transformer with random weights, saved in the transformers format (the
    format of the published checkpoints): config.json and model.safetensors."""
    import torch
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(0)
    model = ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64))
    model.save_pretrained(folder)
    return folder


def tiny_beats(path: Path, **changes) -> Path:
    """A tiny BEATs with random weights, saved as the official checkpoints are: a dict with cfg and model."""
    import dataclasses

    import torch

    from engine.encoders.beats_model import BEATs, BEATsConfig

    torch.manual_seed(0)
    cfg = BEATsConfig.from_dict({**TINY_BEATS, **changes})
    model = BEATs(cfg)
    torch.save({"cfg": dataclasses.asdict(cfg), "model": model.state_dict()}, path)
    return path


def write_hum(
    path: Path,
    seconds: float = 2.0,
    sr: int = 16000,
    seed: int = 0,
    burst: bool = False,
    burst_span: tuple[float, float] = (0.3, 0.7),
) -> Path:
    """A machine-like recording: a hum and noise; with `burst`, a loud band of noise over `burst_span` (as
    fractions of the clip: an anomaly any detector should see)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.1 * np.sin(2 * np.pi * 120 * t) + 0.02 * rng.standard_normal(t.size)
    if burst:
        middle = slice(int(burst_span[0] * t.size), int(burst_span[1] * t.size))
        audio[middle] += 0.4 * rng.standard_normal(audio[middle].size)
    return write_wav(path, audio.astype(np.float32), sr=sr)


class StopAfter(Progress):
    """A job cancelled once a message with `text` has reached it (the end of an epoch), from the job itself or
    from any of its steps (`Progress.child`), as the window's Cancel button cancels: the next `check()` raises
    `Cancelled`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _emit(self, done: int, total: int, message: str) -> None:
        super()._emit(done, total, message)
        if self.text in message:
            self.cancel()
            self.check()
