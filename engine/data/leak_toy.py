"""Synthetic sets for the supervised classifiers: a water-pipe leak set and a multi-class sound set.

The leak set (`generate_leaks`) has one class per file, as a leak survey does: LEAK (hiss-like leak noise
with a slow flow modulation, over a pipe background, at a signal-to-noise ratio from clear to faint), NORMAL
(pipe flow), QUIET (the sensor's noise floor), RANDOM (traffic and knocks) and MECHANICAL (pump hum and
whine). It writes the WAV files, a `metadata.csv` (split train/test, the class as an attribute) and a
`labels.csv` with one labelled region per file, which `earmark labels import` reads.

The sound set (`generate_sounds`) is laid out as ESC-50 (`audio/` and `meta/esc50.csv` with five folds), so
it is read by the same importer as the real data set.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from engine.files import write_text_atomic
from engine.jobs import Progress

LEAK_CLASSES = ("LEAK", "NORMAL", "QUIET", "RANDOM", "MECHANICAL")
SOUND_CLASSES = ("hum", "chirp", "knock", "hiss", "siren")
LEAK_RATE = 8000
SOUND_RATE = 16000


def generate_leaks(
    out: str | Path,
    files_per_class: int = 20,
    duration_s: float = 6.0,
    seed: int = 0,
    test_fraction: float = 0.3,
    progress: Progress | None = None,
) -> Path:
    """Write the leak set into `out`; returns the folder. A share `test_fraction` of each class is 'test'."""
    progress = progress or Progress()
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(duration_s * LEAK_RATE)
    rows, total = [], files_per_class * len(LEAK_CLASSES)
    for index in range(total):
        label = LEAK_CLASSES[index % len(LEAK_CLASSES)]
        number = index // len(LEAK_CLASSES)
        clip_rng = np.random.default_rng(rng.integers(2**32))
        audio = leak_sound(label, n, LEAK_RATE, clip_rng)
        name = f"{label.lower()}_{number:03d}"
        sf.write(out / "audio" / f"{name}.wav", audio, LEAK_RATE, subtype="PCM_16")
        split = "test" if number < round(files_per_class * test_fraction) else "train"
        rows.append({"relative_path": f"audio/{name}.wav", "clip_id": name, "split": split, "class": label})
        progress.update(index + 1, total, name)
    _write_csv(out / "metadata.csv", ["relative_path", "clip_id", "split", "class"], rows)
    _write_csv(
        out / "labels.csv",
        ["clip_id", "file", "start_s", "end_s", "label"],
        [
            {
                "clip_id": r["clip_id"],
                "file": Path(r["relative_path"]).name,
                "start_s": 0.0,
                "end_s": duration_s,
                "label": r["class"],
            }
            for r in rows
        ],
    )
    return out


def leak_sound(label: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of one class, peak-normalised to a level drawn per file."""
    t = np.arange(n) / sr
    floor = 0.02 * _pink(n, rng)
    if label == "QUIET":
        x = floor
    elif label == "NORMAL":
        x = _pipe_flow(n, sr, rng) + floor
    elif label == "MECHANICAL":
        x = _pump(t, rng) + 0.3 * _pipe_flow(n, sr, rng) + floor
    elif label == "RANDOM":
        x = _events(n, sr, rng) + 0.5 * _pipe_flow(n, sr, rng) + floor
    elif label == "LEAK":
        # A leak sits on whatever the pipe sounds like otherwise, from clearly audible to faint.
        background = rng.choice(["NORMAL", "MECHANICAL", "QUIET"])
        x = leak_sound(str(background), n, sr, rng)
        hiss = _bandpass(rng.standard_normal(n), rng.uniform(300, 700), rng.uniform(1500, 3000), sr)
        rate, depth = rng.uniform(0.3, 2.0), rng.uniform(0.2, 0.5)  # flow modulation of the leak jet
        hiss *= 1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        snr_db = rng.uniform(-15, 6)
        x = x + hiss * _rms(x) / _rms(hiss) * 10 ** (snr_db / 20)
    else:
        raise ValueError(f"unknown leak-set class {label!r}")
    return (x / (np.abs(x).max() + 1e-9) * rng.uniform(0.2, 0.8)).astype(np.float32)


def generate_sounds(
    out: str | Path,
    clips_per_class: int = 20,
    duration_s: float = 2.0,
    seed: int = 0,
    classes: Sequence[str] = SOUND_CLASSES,
    progress: Progress | None = None,
) -> Path:
    """Write a small ESC-50-shaped set into `out` (five folds, `meta/esc50.csv`); returns the folder."""
    progress = progress or Progress()
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(duration_s * SOUND_RATE)
    rows, total = [], clips_per_class * len(classes)
    for index in range(total):
        target = index % len(classes)
        number = index // len(classes)
        fold = number % 5 + 1
        audio = _sound(classes[target], n, SOUND_RATE, np.random.default_rng(rng.integers(2**32)))
        name = f"{fold}-{100000 + number}-A-{target}.wav"
        sf.write(out / "audio" / name, audio, SOUND_RATE, subtype="PCM_16")
        rows.append(
            {
                "filename": name,
                "fold": fold,
                "target": target,
                "category": classes[target],
                "esc10": "False",
                "src_file": 100000 + number,
                "take": "A",
            }
        )
        progress.update(index + 1, total, name)
    _write_csv(
        out / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows
    )
    return out


def _sound(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    background = 0.05 * _pink(n, rng) + 0.02 * _events(n, sr, rng)
    if kind == "hum":
        f0 = rng.uniform(80, 200)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    elif kind == "chirp":
        x = signal.chirp(t, rng.uniform(500, 1500), t[-1], rng.uniform(2500, 5000))
        x = x * (np.sin(2 * np.pi * rng.uniform(2, 5) * t) > 0)
    elif kind == "knock":
        x = _events(n, sr, rng, rate=rng.uniform(2, 5))
    elif kind == "hiss":
        x = _bandpass(rng.standard_normal(n), rng.uniform(2000, 3500), rng.uniform(5000, 7000), sr)
    elif kind == "siren":
        x = np.sin(
            2 * np.pi * np.cumsum(rng.uniform(600, 900) + 300 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)) / sr
        )
    else:
        raise ValueError(f"unknown sound class {kind!r}")
    x = x / (_rms(x) + 1e-9) * 0.05 * 10 ** (rng.uniform(-12, 3) / 20) + background
    return (x / max(1.0, np.abs(x).max() * 1.05)).astype(np.float32)


def _pipe_flow(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _bandpass(_pink(n, rng), 40, rng.uniform(300, 600), sr)


def _pump(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    hum = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    whine = 0.3 * np.sin(2 * np.pi * rng.uniform(700, 1400) * t)
    return hum + whine


def _events(n: int, sr: int, rng: np.random.Generator, rate: float | None = None) -> np.ndarray:
    x = np.zeros(n)
    count = rng.poisson((rate or rng.uniform(1, 4)) * n / sr) + 1
    for start in rng.integers(0, max(1, n - sr // 5), count):
        length = int(sr * rng.uniform(0.02, 0.15))
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
        x[start : start + length] += burst[: n - start] * rng.uniform(0.5, 2.0)
    return x


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    x = np.fft.irfft(spectrum, n)
    return x / (_rms(x) + 1e-12)


def _bandpass(x: np.ndarray, low: float, high: float, sr: int) -> np.ndarray:
    sos = signal.butter(4, [low, min(high, sr / 2 * 0.95)], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
