"""The Kaldi-style filter bank AST and BEATs were trained on, and where their patches lie in Hz and seconds.

Both models take 128 Kaldi mel bins (25 ms Hann/Povey windows every 10 ms, 20 Hz to Nyquist) computed by
torchaudio, and cut that image into 16 x 16 patches; a patch row covers a run of mel bins and a patch
column a run of frames, so each patch is a box on the spectrogram.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SAMPLE_RATE = 16000
N_MELS = 128
FRAME_SHIFT_S = 0.010
FRAME_LENGTH_S = 0.025
LOW_HZ = 20.0


def ast_fbank(waveform: torch.Tensor) -> torch.Tensor:
    """[T, 128] log mel filter bank of one mono 16 kHz waveform [N], as the original AST computes it: the
    mean removed, Hann windows, HTK-compatible, no dither."""
    from torchaudio.compliance import kaldi

    waveform = waveform.float()
    waveform = waveform - waveform.mean()
    if waveform.numel() < int(FRAME_LENGTH_S * SAMPLE_RATE):  # Kaldi needs one whole window
        waveform = torch.nn.functional.pad(waveform, (0, int(FRAME_LENGTH_S * SAMPLE_RATE) - waveform.numel()))
    return kaldi.fbank(
        waveform[None],
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=N_MELS,
        dither=0.0,
        frame_shift=FRAME_SHIFT_S * 1000,
        frame_length=FRAME_LENGTH_S * 1000,
    )


def mel_points_hz(n_mels: int = N_MELS, low_hz: float = LOW_HZ, high_hz: float = SAMPLE_RATE / 2) -> np.ndarray:
    """The n_mels + 2 corner frequencies of Kaldi's triangular filters: bin b spans points b to b + 2."""

    def mel(hz: float) -> float:
        return 1127.0 * math.log(1.0 + hz / 700.0)

    points = np.linspace(mel(low_hz), mel(high_hz), n_mels + 2)
    return 700.0 * (np.exp(points / 1127.0) - 1.0)


def row_spans_hz(rows: int, size: int, stride: int) -> np.ndarray:
    """[rows, 2] (low, high) Hz of patch rows covering `size` mel bins every `stride` bins."""
    points = mel_points_hz()
    first = np.arange(rows) * stride
    return np.stack([points[first], points[np.minimum(first + size + 1, N_MELS + 1)]], axis=1)


def column_spans_s(columns: int, size: int, stride: int, offset_frames: int = 0) -> np.ndarray:
    """[columns, 2] (start, end) seconds of patch columns covering `size` frames every `stride` frames."""
    first = offset_frames + np.arange(columns) * stride
    return np.stack([first * FRAME_SHIFT_S, (first + size - 1) * FRAME_SHIFT_S + FRAME_LENGTH_S], axis=1)
