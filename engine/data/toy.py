"""The synthetic data set: machine sounds shaped like DCASE Task 2, with domain shift and marked anomalies.

Three machine types (fan, bearing, valve), several sections each. Source and target domains differ in
background noise (disjoint noise types), SNR (source 10-30 dB, target 0-20 dB), microphone position
(different transfer filters) and operating conditions (speed_level, load_level). Train is normal only,
DCASE 2025 counts (990 source, 10 target per section) times `scale`, target never below 3; test has normal
and anomalous clips in both domains; anomalies (impulse_burst, band_tone, bearing_rattle, dropout) carry
their time spans as `anomaly_regions`; supplemental clips are noise-only or clean machine.

`metadata.csv` is the single source of truth (the ClipMeta contract). A clip's audio depends only on the
seed and the clip's place in the plan, so the same seed gives the same files on any machine and with any
number of worker processes.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio.io import measure_qa
from engine.data import toy_sounds
from engine.data.toy_sounds import ANOMALY_KINDS, SectionSound, rms
from engine.errors import EarmarkError
from engine.files import atomic_path
from engine.jobs import Progress

MACHINES = ("fan", "bearing", "valve")
NOISES = {"source": ("white", "pink", "hum"), "target": ("brown", "impulse", "babble")}
MICS = {"source": (0, 1), "target": (2, 3)}
SNR_DB = {"source": (10.0, 30.0), "target": (0.0, 20.0)}
SPEEDS = {"source": (1, 2), "target": (3,)}
LOADS = {"source": (1, 2), "target": (2, 3)}
#: Clips per section at scale 1 (DCASE 2025 train counts; 50 per domain and label in test).
SOURCE_TRAIN, TARGET_TRAIN, TEST_EACH, SUPPLEMENTAL_EACH = 990, 10, 50, 50
COLUMNS = ("clip_id", "relative_path", "machine_type", "section_id", "domain", "split", "label", "is_anomaly",
           "anomaly_type", "anomaly_regions", "speed_level", "load_level", "mic_position_id", "noise_id",
           "snr_db", "supp_type", "sample_rate", "duration_s", "qa_rms", "qa_peak", "qa_clipping_ratio",
           "qa_silence_ratio")
LEVEL_DBFS = -20.0


@dataclass(frozen=True)
class ToyConfig:
    scale: float = 0.05
    seed: int = 0
    sample_rate: int = 16000
    duration_s: float = 10.0
    sections: int = 3
    machines: tuple[str, ...] = MACHINES

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 10:
            raise EarmarkError(f"scale must be above 0 and at most 10, not {self.scale}")
        if not 0.5 <= self.duration_s <= 600:
            raise EarmarkError(f"clip duration must be 0.5-600 s, not {self.duration_s}")
        if not 1 <= self.sections <= 100:
            raise EarmarkError(f"sections must be 1-100, not {self.sections}")
        unknown = set(self.machines) - set(MACHINES)
        if unknown or not self.machines:
            raise EarmarkError(f"machine types must be among {', '.join(MACHINES)}")


@dataclass(frozen=True)
class ClipPlan:
    """Everything that decides one clip, drawn before any audio is made."""

    machine: str
    section: int
    domain: str
    split: str
    label: str | None
    index: int
    speed: int
    load: int
    mic: int
    noise: str | None
    snr_db: float | None
    supp_type: str | None
    anomaly: str | None
    seed: tuple[int, ...]

    @property
    def stem(self) -> str:
        kind = self.label if self.split != "supplemental" else self.supp_type
        return (f"section_{self.section:02d}_{self.domain}_{self.split}_{kind}_{self.index:04d}"
                f"_spd_{self.speed}_load_{self.load}_mic_{self.mic}_noise_{self.noise or 'none'}")

    @property
    def relative_path(self) -> str:
        return f"{self.machine}/{self.split}/{self.stem}.wav"


def counts(scale: float) -> dict[str, int]:
    """Clips per section and kind at a scale (rounded half up, with the floors of the contract)."""
    def scaled(n: int) -> int:
        return int(math.floor(n * scale + 0.5))
    return {"source_train": max(1, scaled(SOURCE_TRAIN)), "target_train": max(3, scaled(TARGET_TRAIN)),
            "test_each": max(5, scaled(TEST_EACH)), "supplemental_each": max(2, scaled(SUPPLEMENTAL_EACH))}


def plan(config: ToyConfig) -> list[ClipPlan]:
    n = counts(config.scale)
    out = []
    for machine in config.machines:
        machine_code = MACHINES.index(machine)
        for section in range(config.sections):
            jobs = [("source", "train", "normal", None, n["source_train"]),
                    ("target", "train", "normal", None, n["target_train"])]
            for domain in ("source", "target"):
                jobs += [(domain, "test", "normal", None, n["test_each"]),
                         (domain, "test", "anomaly", None, n["test_each"])]
            jobs += [(None, "supplemental", None, "noise", n["supplemental_each"]),
                     (None, "supplemental", None, "machine", n["supplemental_each"])]
            for job, (domain, split, label, supp, count) in enumerate(jobs):
                for index in range(count):
                    seed = (config.seed, machine_code, section, job, index)
                    rng = np.random.default_rng(seed)
                    dom = domain or ("source", "target")[index % 2]
                    noise = None if supp == "machine" else str(rng.choice(NOISES[dom]))
                    out.append(ClipPlan(
                        machine=machine, section=section, domain=dom, split=split, label=label, index=index,
                        speed=int(rng.choice(SPEEDS[dom])), load=int(rng.choice(LOADS[dom])),
                        mic=int(rng.choice(MICS[dom])), noise=noise,
                        snr_db=None if supp else round(float(rng.uniform(*SNR_DB[dom])), 2),
                        supp_type=supp,
                        anomaly=ANOMALY_KINDS[(index + section + job) % len(ANOMALY_KINDS)] if label == "anomaly"
                        else None,
                        seed=seed))
    return out


def render(item: ClipPlan, config: ToyConfig) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clip's samples (float, within [-1, 1]) and its anomaly regions in seconds."""
    sr, n = config.sample_rate, int(round(config.duration_s * config.sample_rate))
    section = SectionSound.draw(item.machine, np.random.default_rng((config.seed, 7, MACHINES.index(item.machine),
                                                                      item.section)))
    rng = np.random.default_rng((*item.seed, 1))
    machine = toy_sounds.machine_sound(section, item.speed, item.load, n, sr, rng)
    level = rms(machine)
    noise = np.zeros(n)
    if item.noise is not None:
        noise = toy_sounds.coloured_noise(item.noise, n, sr, rng)
        noise *= level / 10 ** (item.snr_db / 20) if item.snr_db is not None else level
    if item.supp_type == "noise":
        machine = np.zeros(n)
    normal = toy_sounds.microphone(machine + noise, item.mic, sr)
    gain = 10 ** (LEVEL_DBFS / 20) / max(rms(normal), 1e-12) * rng.uniform(0.7, 1.4)
    regions: list[tuple[float, float]] = []
    x = normal
    if item.anomaly is not None:
        broken, regions = toy_sounds.add_anomaly(item.anomaly, machine, sr, rng)
        x = toy_sounds.microphone(broken + noise, item.mic, sr)
    return np.clip(x * gain, -1.0, 1.0).astype(np.float32), regions


def _write_clip(item: ClipPlan, config: ToyConfig, out_dir: str) -> dict[str, str]:
    samples, regions = render(item, config)
    path = Path(out_dir) / item.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, config.sample_rate, subtype="PCM_16")
    qa = measure_qa(samples, config.sample_rate)
    row = {
        "clip_id": f"{item.machine}/{item.split}/{item.stem}", "relative_path": item.relative_path,
        "machine_type": item.machine, "section_id": f"{item.section:02d}", "domain": item.domain,
        "split": item.split, "label": item.label or "",
        "is_anomaly": "" if item.label is None else str(int(item.label == "anomaly")),
        "anomaly_type": item.anomaly or "", "anomaly_regions": json.dumps([[round(a, 4), round(b, 4)]
                                                                         for a, b in regions]),
        "speed_level": item.speed, "load_level": item.load, "mic_position_id": item.mic,
        "noise_id": item.noise or "", "snr_db": "" if item.snr_db is None else item.snr_db,
        "supp_type": item.supp_type or "", "sample_rate": config.sample_rate, "duration_s": config.duration_s,
        "qa_rms": round(qa.rms, 3), "qa_peak": round(qa.peak, 5), "qa_clipping_ratio": round(qa.clipping_ratio, 6),
        "qa_silence_ratio": round(qa.silence_ratio, 4),
    }
    return {key: str(value) for key, value in row.items()}


def generate(out_dir: str | Path, config: ToyConfig = ToyConfig(), progress: Progress | None = None,
             workers: int | None = None) -> Path:
    """Write the data set under `out_dir` and return the path of its metadata.csv (written last)."""
    progress = progress or Progress()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EarmarkError(f"cannot create {out}: {exc.strerror}") from None
    items = plan(config)
    if workers is None:
        audio_seconds = len(items) * config.duration_s
        workers = 1 if audio_seconds < 600 else max(1, min(4, os.cpu_count() or 1))
    progress.update(0, len(items), "synthesising clips")
    rows: list[dict[str, str]] = []
    if workers == 1:
        for item in items:
            rows.append(_write_clip(item, config, str(out)))
            progress.update(len(rows), len(items), item.relative_path)
    else:
        context = multiprocessing.get_context("spawn")  # safe also when called from a GUI's worker thread
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            try:
                for row in pool.map(_write_clip, items, [config] * len(items), [str(out)] * len(items),
                                    chunksize=8):
                    rows.append(row)
                    progress.update(len(rows), len(items), row["relative_path"])
            except BaseException:  # cancelled or interrupted: drop the clips still queued
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    metadata = out / "metadata.csv"
    with atomic_path(metadata) as partial, open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "toy_config.json").write_text(json.dumps({**asdict(config), "counts_per_section": counts(config.scale)},
                                                    indent=2))
    return metadata
