"""Stationary faults for the synthetic data set: whole-clip changes modelled on machine-condition physics.

Real machine faults are often not events but a slightly different machine: an unbalanced rotor, a worn
bearing, a clogged filter change the whole recording a little. Each fault here is applied to the clean
machine signal (before background noise and microphone, like the transient anomalies) and follows the
signature vibration analysts look for:

- imbalance: a once-per-revolution force. The 1x shaft component grows and every tone of the machine is
  amplitude-modulated at the rotation rate, so sidebands appear at each harmonic +- 1x.
- misalignment: a coupling that bends twice per revolution. The 2x shaft harmonic (and 3x, 4x) grows, and
  the machine's tones gain +- 2x sidebands.
- bearing_wear: a rough race. The high-frequency floor (a band a few kHz up) rises, and it pulses at the
  bearing's defect rate, as a worn race excites the housing once per roller passing.
- clogging: restricted flow. The spectrum tilts and a flow resonance moves (fan: a choked intake whose
  broadband flow noise loses its highs while a duct resonance grows below the old flow band; valve: a
  narrowed orifice whose hiss moves up; bearing: a clogged lubricant supply, whose dry contact adds
  high-frequency friction and stiffens the housing ring).
- looseness: a loose mount or foot. The response turns non-linear: half-order sub-harmonics (0.5x, 1.5x,
  ...) and a richer series of integer harmonics appear, and the machine's tones gain +- 0.5x sidebands.

Severity is subtle on purpose: a few dB in the affected band or harmonic, drawn per clip within a range, and
the overall level stays within 3 dB of the same clip without the fault. Every function takes the clip's
numpy Generator after the normal signal has been drawn, so a clip with a fault and the same clip without it
share every other sample of randomness.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import hilbert

from engine.data.toy_sounds import SPEED_FACTOR, STATIONARY_KINDS, SectionSound, bandpass, rms

__all__ = ["STATIONARY_KINDS", "add_fault", "defect_rate", "rotation_rate", "signature_db"]
#: Upper bound of a fault's overall level rise over the same clip without it.
MAX_RISE_DB = 3.0


def rotation_rate(sound: SectionSound, speed: int) -> float:
    """The rate (Hz) a fault's orders refer to: the shaft speed of a fan or a bearing at this speed level.

    A valve has no shaft. Its `rotation_hz` is the tone of the closing thump, the natural frequency of the
    plug and stem; a fluttering, misaligned or loose plug vibrates at that mode whatever the cycle rate, so the
    valve's faults take it as their 1x (unscaled by speed, which only changes the open/close cycle).
    """
    if sound.machine == "valve":
        return sound.rotation_hz
    return sound.rotation_hz * SPEED_FACTOR[speed]


def defect_rate(sound: SectionSound, speed: int) -> float:
    """The rate (Hz) at which a worn race pulses.

    The bearing machine's normal impacts already come at its outer-race ball-pass rate (0.4 x rollers x
    shaft), so its wear is an inner race: 0.6 x rollers x shaft. A fan's own shaft bearings pulse at about
    3.5x the shaft (a typical outer-race rate); a valve's worn stem guide at the plug's mode."""
    if sound.machine == "bearing":
        return sound.rotation_hz * sound.count * 0.6 * SPEED_FACTOR[speed]
    if sound.machine == "fan":
        return 3.5 * rotation_rate(sound, speed)
    return rotation_rate(sound, speed)


def add_fault(
    kind: str,
    machine: np.ndarray,
    phase: np.ndarray,
    sound: SectionSound,
    speed: int,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The machine signal with the stationary fault `kind` over the whole clip.

    `phase` is the shaft's phase in radians at every sample (see toy_sounds.machine_sound), so the fault's
    orders follow the machine's own speed wobble."""
    level = rms(machine)
    # The machines' own 1x and 2x run as sin(phase) and sin(2 phase); a fault's force adds to them within
    # +-45 degrees (the new heavy spot or bend lies near the old one), so it never cancels the residual.
    if kind == "imbalance":
        # The bearing machine's impacts already swell once per turn (depth 0.5, its load zone); imbalance
        # deepens that by 2.5-5.5 dB. Fans and valves have no such swell: a depth of 0.10-0.22 is new.
        depth = rng.uniform(0.25, 0.45) if sound.machine == "bearing" else rng.uniform(0.10, 0.22)
        x = machine * (1 + depth * np.sin(phase + _near(rng)))
        x += _orders(phase, {1.0: rng.uniform(0.08, 0.16)}, machine, sr, rng)
    elif kind == "misalignment":
        depth = rng.uniform(0.10, 0.20)
        x = machine * (1 + depth * np.sin(2 * phase + _near(rng)))
        x += _orders(
            phase, {k: a * rng.uniform(0.07, 0.14) for k, a in ((2.0, 1.0), (3.0, 0.5), (4.0, 0.3))}, machine, sr, rng
        )
    elif kind == "bearing_wear":
        x = machine + _worn_race(machine, sound, speed, sr, rng)
    elif kind == "clogging":
        x = _clogged(machine, sound, sr, rng)
    elif kind == "looseness":
        depth = rng.uniform(0.08, 0.18)
        x = machine * (1 + depth * np.cos(0.5 * phase + rng.uniform(0, 2 * np.pi)))
        strength = rng.uniform(0.04, 0.09)
        orders = {k + 0.5: strength / (1 + 0.3 * k) for k in range(6)}
        orders.update({float(k): 0.6 * strength / (1 + 0.3 * k) for k in range(3, 11)})
        x += _orders(phase, orders, machine, sr, rng)
    else:
        raise ValueError(f"unknown stationary fault {kind!r}")
    return _within_level(x, level)


def _orders(
    phase: np.ndarray, amplitudes: dict[float, float], machine: np.ndarray, sr: int, rng: np.random.Generator
) -> np.ndarray:
    """Tones at orders of the shaft, each raising the machine's own energy within a sixth of an octave of it
    by 2-6 dB, and never above its amplitude in `amplitudes` (relative to the machine's RMS): a few dB where
    the machine already has a line or a floor, little where it has nothing (behind the background noise)."""
    n = len(phase)
    out = np.zeros(n)
    power = np.abs(np.fft.rfft(machine)) ** 2 * 2 / n**2  # mean-square contribution of each bin
    freqs = np.fft.rfftfreq(n, 1 / sr)
    rate = (phase[-1] - phase[0]) / (2 * np.pi * (n - 1) / sr)
    for order, amplitude in amplitudes.items():
        offset = _near(rng) if order in (1.0, 2.0) else rng.uniform(0, 2 * np.pi)
        near = np.abs(np.log2(np.maximum(freqs, 1e-3) / (order * rate))) <= 1 / 12
        wanted = np.sqrt(2 * power[near].sum() * (10 ** (rng.uniform(2.0, 6.0) / 10) - 1))
        out += min(wanted, amplitude * rms(machine) * np.sqrt(2)) * np.sin(order * phase + offset)
    return out


def _near(rng: np.random.Generator) -> float:
    return rng.uniform(-np.pi / 4, np.pi / 4)


def _worn_race(machine: np.ndarray, sound: SectionSound, speed: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band noise a few kHz up, pulsing at the defect rate, that raises that band by 2-6 dB.

    The band lies above the machine's own ring or hiss where the sample rate allows, and the floor stays at
    least 10 dB below the machine overall (where the band is the machine's loudest, as for a valve's hiss,
    the rise is smaller and the pulsing is what tells)."""
    n = len(machine)
    centre = min(max(rng.uniform(3000, 5000), 1.4 * sound.resonance_hz), sr / 3.2)
    low, high = centre / 1.25, min(centre * 1.25, sr / 2.2)
    rise_db = rng.uniform(2.0, 6.0)
    wanted = rms(bandpass(machine, low, high, sr)) * np.sqrt(10 ** (rise_db / 10) - 1)
    t = np.arange(n) / sr
    pulses = np.exp(
        rng.uniform(1.0, 2.0) * np.cos(2 * np.pi * defect_rate(sound, speed) * t + rng.uniform(0, 2 * np.pi))
    )
    floor = bandpass(rng.standard_normal(n), low, high, sr) * pulses
    return floor * min(wanted, 0.3 * rms(machine)) / max(rms(floor), 1e-12)


def _clogged(machine: np.ndarray, sound: SectionSound, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A spectral tilt and a moved resonance, applied as one zero-phase filter over the whole clip."""
    n = len(machine)
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    tilt = rng.uniform(1.5, 2.5)  # dB per octave, pivoting at 1 kHz
    boost = rng.uniform(3.0, 6.0)  # dB at the moved resonance
    if sound.machine == "fan":  # choked intake: less turbulent flow up high, a duct mode below the flow band
        tilt, centre = -tilt, sound.resonance_hz * rng.uniform(0.6, 0.75)
    else:  # narrowed valve orifice / starved bearing: hiss and friction move up
        centre = sound.resonance_hz * rng.uniform(1.2, 1.4)
    centre = min(centre, sr / 2.5)
    gain_db = tilt * np.clip(np.log2(freqs / 1000.0), -3, 3)
    gain_db += boost * np.exp(-0.5 * (np.log2(freqs / centre) / 0.25) ** 2)
    x = np.fft.irfft(np.fft.rfft(machine) * 10 ** (gain_db / 20), n)
    # A clogged machine works a little harder or a little softer; its level moves by at most 1 dB.
    return x * rms(machine) / max(rms(x), 1e-12) * 10 ** (rng.uniform(-1.0, 1.0) / 20)


def _within_level(x: np.ndarray, level: float) -> np.ndarray:
    """Keep the fault subtle overall: at most MAX_RISE_DB above the machine without it (with a margin, since
    the background noise added later only lowers the rise)."""
    limit = level * 10 ** ((MAX_RISE_DB - 0.5) / 20)
    return x * min(1.0, limit / max(rms(x), 1e-12))


def signature_db(kind: str, samples: np.ndarray, sound: SectionSound, speed: int, sr: int) -> float:
    """The figure a vibration analyst would read for this fault, in dB, from a finished clip.

    imbalance, misalignment, looseness: the envelope spectrum's line at 1x, 2x, 0.5x (the sidebands' strength
    as a modulation index, 20 log10 of the line over the mean envelope); bearing_wear: the same line at the
    defect rate in the envelope of the band a few kHz up where the worn race rings (envelope analysis, the
    bearing analyst's tool); clogging: the spectral tilt, the slope of the octave-band levels from 125 Hz to
    4 kHz in dB per octave. Compare a clip with and without its fault, or against the spread over normal
    clips."""
    x = np.asarray(samples, dtype=float)
    if kind in ("imbalance", "misalignment", "looseness"):
        order = {"imbalance": 1.0, "misalignment": 2.0, "looseness": 0.5}[kind]
        return _envelope_line_db(x, order * rotation_rate(sound, speed), sr)
    if kind == "bearing_wear":
        return _envelope_line_db(bandpass(x, 2400, min(6400, sr / 2.2), sr), defect_rate(sound, speed), sr)
    if kind == "clogging":
        power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / sr)
        octaves = np.arange(7.0)  # bands centred on 125 Hz ... 8 kHz, those below Nyquist
        centres = 125.0 * 2**octaves
        octaves = octaves[centres * np.sqrt(2) < sr / 2]
        levels = [
            10 * np.log10(power[(freqs >= 125.0 * 2 ** (o - 0.5)) & (freqs < 125.0 * 2 ** (o + 0.5))].sum() + 1e-30)
            for o in octaves
        ]
        return float(np.polyfit(octaves, levels, 1)[0])
    raise ValueError(f"unknown stationary fault {kind!r}")


def _envelope_line_db(x: np.ndarray, frequency: float, sr: int) -> float:
    envelope = np.abs(hilbert(x))
    spectrum = np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    near = np.abs(freqs - frequency) <= max(0.02 * frequency, 1.5 * sr / len(x))
    line = spectrum[near].max() if near.any() else 0.0
    # Hann's coherent gain is 0.5: a modulation index m gives a line of m * mean * N / 4.
    return float(20 * np.log10(max(4 * line / (len(x) * max(envelope.mean(), 1e-12)), 1e-6)))
