"""Helpers that write small audio files for tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, amplitude: float = 0.5,
         channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = amplitude * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray | None = None, sr: int = 16000, subtype: str = "PCM_16",
              fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(sr=sr) if samples is None else samples, sr, subtype=subtype, format=fmt)
    return path
