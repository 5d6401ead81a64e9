"""Signal synthesis for the synthetic data set: machines, background noises, microphone positions and
anomalies. Every function takes a numpy Generator, so a clip is fully determined by its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

NOISE_TYPES = ("white", "pink", "brown", "hum", "impulse", "babble")
TRANSIENT_KINDS = ("impulse_burst", "band_tone", "bearing_rattle", "dropout")
#: Whole-clip faults, synthesised in engine.data.toy_faults (named here so both families have one home).
STATIONARY_KINDS = ("imbalance", "misalignment", "bearing_wear", "clogging", "looseness")
ANOMALY_KINDS = TRANSIENT_KINDS + STATIONARY_KINDS
SPEED_FACTOR = {1: 0.85, 2: 1.0, 3: 1.2}
LOAD_FACTOR = {1: 0.8, 2: 1.0, 3: 1.25}


@dataclass(frozen=True)
class SectionSound:
    """The fixed character of one machine section (one physical unit)."""

    machine: str
    rotation_hz: float  # fan: shaft speed; bearing: shaft speed
    count: int  # fan: blades; bearing: rolling elements
    rolloff: float  # fan: harmonic roll-off; valve: cycle period in seconds
    resonance_hz: float  # bearing: ring frequency; valve: hiss band centre; fan: flow band centre
    level: float  # broadband share

    @staticmethod
    def draw(machine: str, rng: np.random.Generator) -> SectionSound:
        if machine == "fan":
            return SectionSound(
                machine,
                rng.uniform(18, 32),
                int(rng.choice([5, 6, 7, 9])),
                rng.uniform(0.9, 1.5),
                rng.uniform(900, 2500),
                rng.uniform(0.3, 0.6),
            )
        if machine == "bearing":
            return SectionSound(
                machine,
                rng.uniform(20, 35),
                int(rng.integers(7, 13)),
                rng.uniform(0, 1),
                rng.uniform(1800, 4000),
                rng.uniform(0.1, 0.3),
            )
        if machine == "valve":
            return SectionSound(
                machine,
                rng.uniform(80, 180),
                1,
                rng.uniform(1.2, 2.5),
                rng.uniform(1500, 4000),
                rng.uniform(0.05, 0.15),
            )
        raise ValueError(f"unknown machine type {machine!r}")


def machine_sound(
    sound: SectionSound, speed: int, load: int, n: int, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The clean machine signal and its shaft's phase in radians at every sample (the valve's: its thump
    tone's), which the stationary faults lock their orders to."""
    t = np.arange(n) / sr
    speed_f, load_f = SPEED_FACTOR[speed], LOAD_FACTOR[load]
    if sound.machine == "fan":
        # Blade-pass harmonics on a slowly wobbling shaft speed, plus broadband flow noise.
        rotation = sound.rotation_hz * speed_f * (1 + 0.003 * rng.standard_normal())
        inst = rotation * (1 + 0.002 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(inst) / sr
        x = 0.3 * np.sin(phase)
        for k in range(1, 9):
            if k * sound.count * rotation < sr / 2.2:
                x += np.sin(k * sound.count * phase + rng.uniform(0, 2 * np.pi)) / k**sound.rolloff
        flow = bandpass(coloured_noise("pink", n, sr, rng), 200, min(4000, sr / 2.5), sr)
        return x + flow * rms(x) * sound.level * load_f / rms(flow), phase
    if sound.machine == "bearing":
        # Periodic impacts at the ball-pass rate, modulated by the shaft, each ringing the housing.
        rate = sound.rotation_hz * sound.count * 0.4 * speed_f
        times = np.arange(rng.uniform(0, 1 / rate), n / sr, 1 / rate)
        times = times + rng.normal(0, 0.02 / rate, len(times))
        amplitude = (1 + 0.5 * np.sin(2 * np.pi * sound.rotation_hz * speed_f * times)) * load_f
        ring = _ring(min(sound.resonance_hz, sr / 2.5), 0.002, sr)
        x = _impacts(times, amplitude, ring, n, sr)
        shaft = sound.rotation_hz * speed_f
        x += 0.15 * np.sin(2 * np.pi * shaft * t) + 0.07 * np.sin(4 * np.pi * shaft * t)
        return x + sound.level * rms(x) * rng.standard_normal(n), 2 * np.pi * shaft * t
    # valve: open/close cycles; a click and flow hiss while open, a thump when it closes.
    period = sound.rolloff / speed_f
    x = 0.02 * bandpass(rng.standard_normal(n), 60, 400, sr)
    hiss = bandpass(rng.standard_normal(n), sound.resonance_hz * 0.7, min(sound.resonance_hz * 1.3, sr / 2.2), sr)
    open_s = period * 0.45
    ramp = int(0.02 * sr)  # soft opening and closing of the flow
    start = rng.uniform(0, period)
    while start < n / sr:
        a = int(start * sr)
        b = min(n, int((start + open_s) * sr))
        x[a:b] += 0.4 * load_f * hiss[a:b] * _fade(b - a, ramp)
        click = rng.standard_normal(int(0.005 * sr)) * np.exp(-np.arange(int(0.005 * sr)) / (0.001 * sr))
        x[a : a + len(click)] += click[: n - a]
        thump = np.sin(2 * np.pi * sound.rotation_hz * np.arange(int(0.08 * sr)) / sr)
        thump *= np.exp(-np.arange(len(thump)) / (0.02 * sr)) * 0.8 * load_f
        x[b : b + len(thump)] += thump[: n - b]
        start += period * (1 + 0.03 * rng.standard_normal())
    return x + sound.level * rms(x) * rng.standard_normal(n), 2 * np.pi * sound.rotation_hz * t


def coloured_noise(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Background noise of one of NOISE_TYPES, at unit RMS."""
    if kind in ("white", "pink", "brown"):
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
        spectrum *= {"white": 1.0, "pink": freqs**-0.5, "brown": freqs**-1.0}[kind]
        x = np.fft.irfft(spectrum, n)
    elif kind == "hum":
        t = np.arange(n) / sr
        mains = rng.choice([50.0, 60.0])
        x = sum(
            rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) for k in range(1, 8)
        ) + 0.05 * rng.standard_normal(n)
    elif kind == "impulse":
        x = 0.05 * rng.standard_normal(n)
        count = rng.poisson(rng.uniform(3, 10) * n / sr)
        burst = int(0.004 * sr)
        decay = np.exp(-np.arange(burst) / (0.001 * sr))
        for at in rng.integers(0, max(1, n - burst), count):
            x[at : at + burst] += rng.uniform(0.5, 2.0) * rng.standard_normal(burst) * decay
    elif kind == "babble":
        t = np.arange(n) / sr
        x = np.zeros(n)
        for _ in range(6):
            f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
            phase = 2 * np.pi * np.cumsum(f0) / sr
            voiced = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 250 < sr / 2.5)
            syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, None)
            x += voiced * syllables * rng.uniform(0.5, 1.0)
        x = bandpass(x, 200, min(3500, sr / 2.5), sr)
    else:
        raise ValueError(f"unknown noise type {kind!r}")
    return x / max(rms(x), 1e-12)


def microphone(x: np.ndarray, position: int, sr: int) -> np.ndarray:
    """The transfer of microphone position 0-3: from near-flat to far and muffled with a reflection."""
    nyquist = sr / 2
    if position == 0:
        return signal.sosfilt(signal.butter(2, 40, "highpass", fs=sr, output="sos"), x)
    if position == 1:
        return signal.sosfilt(signal.butter(2, min(6000, nyquist * 0.9), "lowpass", fs=sr, output="sos"), x)
    if position == 2:
        y = signal.sosfilt(signal.butter(2, 300, "highpass", fs=sr, output="sos"), x)
        return y + 0.6 * bandpass(y, 2200, min(2900, nyquist * 0.9), sr)
    if position == 3:
        y = signal.sosfilt(signal.butter(4, min(2500, nyquist * 0.9), "lowpass", fs=sr, output="sos"), x)
        delay = int(0.004 * sr)
        y[delay:] += 0.5 * y[:-delay]
        return y
    raise ValueError(f"unknown microphone position {position}")


def add_anomaly(
    kind: str, machine: np.ndarray, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The machine signal with one transient anomaly of `kind` added, and the time spans it covers."""
    n = len(machine)
    duration = n / sr
    level = rms(machine)
    x = machine.copy()

    def span(low: float, high: float) -> tuple[int, int]:
        length = min(rng.uniform(low, high), 0.6 * duration)
        start = rng.uniform(0.05 * duration, duration - length - 0.05 * duration)
        return int(start * sr), int((start + length) * sr)

    regions = []
    if kind == "impulse_burst":
        for _ in range(int(rng.integers(1, 3))):
            a, b = span(0.05, 0.3)
            x[a:b] += rng.uniform(2.0, 4.0) * level * rng.standard_normal(b - a) * np.hanning(b - a)
            regions.append((a, b))
    elif kind == "band_tone":
        a, b = span(0.5, 2.0)
        t = np.arange(b - a) / sr
        tone = np.sin(2 * np.pi * rng.uniform(600, min(6000, sr / 2.5)) * t)
        x[a:b] += rng.uniform(0.5, 1.0) * level * np.sqrt(2) * tone * _fade(b - a, int(0.03 * sr))
        regions.append((a, b))
    elif kind == "bearing_rattle":
        a, b = span(0.5, 3.0)
        rate = rng.uniform(15, 40)
        base = np.arange(a / sr, b / sr, 1 / rate)
        times = base + rng.normal(0, 0.1 / rate, len(base))
        ring = _ring(rng.uniform(800, min(2500, sr / 2.5)), 0.004, sr)
        x += _impacts(times, rng.uniform(3.0, 6.0) * level * np.ones(len(times)), ring, n, sr)
        regions.append((a, b))
    elif kind == "dropout":
        a, b = span(0.2, 1.0)
        gain = np.ones(n)
        gain[a:b] = 1 - (1 - rng.uniform(0.01, 0.1)) * _fade(b - a, int(0.01 * sr))
        x *= gain
        regions.append((a, b))
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    merged = sorted((a / sr, b / sr) for a, b in regions)
    return x, merged


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def bandpass(x: np.ndarray, low: float, high: float, sr: int) -> np.ndarray:
    """`x` through a second-order Butterworth band-pass from `low` to `high` Hz."""
    return signal.sosfilt(signal.butter(2, [low, high], "bandpass", fs=sr, output="sos"), x)


def _ring(frequency: float, decay_s: float, sr: int) -> np.ndarray:
    t = np.arange(int(10 * decay_s * sr)) / sr
    return np.sin(2 * np.pi * frequency * t) * np.exp(-t / decay_s)


def _impacts(times: np.ndarray, amplitude: np.ndarray, ring: np.ndarray, n: int, sr: int) -> np.ndarray:
    train = np.zeros(n)
    index = np.clip((times * sr).astype(int), 0, n - 1)
    np.add.at(train, index, amplitude)
    return signal.oaconvolve(train, ring)[:n]


def _fade(length: int, ramp: int) -> np.ndarray:
    envelope = np.ones(length)
    ramp = max(1, min(ramp, length // 2))
    envelope[:ramp] = np.linspace(0, 1, ramp)
    envelope[-ramp:] = np.linspace(1, 0, ramp)
    return envelope
