"""Waveform augmentations: mixing in background noise at a chosen SNR, and pitch shifting."""
from __future__ import annotations

import numpy as np


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` plus `noise` (looped or cut to the signal's length) scaled to `snr_db` below the signal."""
    signal = np.asarray(signal, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if noise.size == 0:
        return signal.copy()
    if len(noise) < len(signal):
        noise = np.tile(noise, int(np.ceil(len(signal) / len(noise))))
    noise = noise[:len(signal)]
    signal_power = float(np.mean(signal.astype(np.float64) ** 2))
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    if noise_power <= 0.0 or signal_power <= 0.0:
        return signal.copy()
    gain = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (signal + gain * noise).astype(np.float32)


def pitch_shift(signal: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """The signal shifted by `semitones` (positive = higher), same length (librosa's phase vocoder)."""
    import librosa

    shifted = librosa.effects.pitch_shift(np.asarray(signal, dtype=np.float32), sr=sample_rate, n_steps=semitones)
    return np.asarray(shifted, dtype=np.float32)
