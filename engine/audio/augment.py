"""Waveform augmentations: background noise at a chosen SNR, white noise, pitch shift, time stretch, reverb
and gain. Each is deterministic for a given seed, so a variant of a clip can be cached."""

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
    noise = noise[: len(signal)]
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


def add_noise(signal: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise mixed in `snr_db` below the signal (seeded, so the same clip gets the same variant)."""
    noise = np.random.default_rng(seed).standard_normal(len(signal)).astype(np.float32)
    return mix_at_snr(signal, noise, snr_db)


def time_stretch(signal: np.ndarray, rate: float) -> np.ndarray:
    """Played `rate` times as fast without changing pitch (librosa's phase vocoder), cut or zero-padded back
    to the input's length."""
    import librosa

    stretched = librosa.effects.time_stretch(np.asarray(signal, dtype=np.float32), rate=rate)
    return fit_length(stretched, len(signal))


def reverb(signal: np.ndarray, sample_rate: int, decay_s: float = 0.3, wet: float = 0.3, seed: int = 0) -> np.ndarray:
    """A small room: the signal convolved with exponentially decaying noise (the impulse response of a
    diffuse tail), mixed `wet` into the dry signal at the same loudness."""
    from scipy.signal import fftconvolve

    length = max(1, int(decay_s * sample_rate))
    rng = np.random.default_rng(seed)
    response = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)  # -60 dB at decay_s
    tail = fftconvolve(signal, response)[: len(signal)]
    tail *= np.sqrt(np.mean(np.square(signal)) / (np.mean(np.square(tail)) + 1e-12))
    return ((1 - wet) * signal + wet * tail).astype(np.float32)


def gain(signal: np.ndarray, db: float) -> np.ndarray:
    return (np.asarray(signal, dtype=np.float32) * np.float32(10 ** (db / 20))).astype(np.float32)


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Cut to `length` samples, or zero-pad at the end."""
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) >= length:
        return signal[:length]
    return np.pad(signal, (0, length - len(signal)))
