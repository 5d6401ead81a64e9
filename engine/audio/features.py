"""Spectral features computed with torch on the engine's device: the log-mel spectrogram and its grid.

A feature config is a frozen dataclass; its `key` (name plus a hash of every field) names its cache folder,
so changing any parameter can never return stale features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

#: Floor before the logarithm, as the DCASE baseline (sys.float_info.epsilon).
_LOG_FLOOR = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel power spectrogram in dB: 10 log10(mel power), the DCASE baseline's features by default."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    power: float = 2.0
    f_min: float = 0.0
    f_max: float | None = None

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return f"logmel-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    @property
    def top_hz(self) -> float:
        return self.f_max if self.f_max is not None else self.sample_rate / 2

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame in seconds (frames are centred: frame i covers i * hop)."""
        return np.arange(n_frames, dtype=np.float64) * self.hop_length / self.sample_rate

    def band_edges_hz(self) -> np.ndarray:
        """The n_mels + 1 edges (Hz) of the mel bands, evenly spaced on the Slaney mel scale."""
        import librosa

        return librosa.mel_frequencies(self.n_mels + 1, fmin=self.f_min, fmax=self.top_hz, htk=False)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1

    def min_samples(self, frames: int = 1) -> int:
        """The fewest samples that give `frames` frames: centred frames reflect half an FFT window at each
        end, which needs more samples than that half window."""
        return max(self.n_fft // 2 + 1, (frames - 1) * self.hop_length)

    def min_duration_s(self, frames: int = 1) -> float:
        return self.min_samples(frames) / self.sample_rate

    def compute(self, waveforms: torch.Tensor) -> torch.Tensor:
        """[B, samples] float32 -> [B, n_mels, frames] log-mel in dB."""
        transform = _mel_transform(self, waveforms.device.type, waveforms.device.index)
        with torch.autocast(waveforms.device.type, enabled=False):
            mel = transform(waveforms.float())
        return 10.0 * torch.log10(torch.clamp(mel, min=_LOG_FLOOR)) * (2.0 / self.power)


@lru_cache(maxsize=8)
def _mel_transform(config: LogMelConfig, device_type: str, device_index: int | None):
    import torchaudio

    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        power=config.power,
        f_min=config.f_min,
        f_max=config.f_max,
        center=True,
        pad_mode="reflect",
        norm="slaney",
        mel_scale="slaney",
    )
    return transform.to(torch.device(device_type, device_index) if device_index is not None else device_type)
