"""The synthetic data set: machine sounds shaped like DCASE Task 2, with domain shift and marked anomalies.

Three machine types (fan, bearing, valve), several sections each. Source and target domains differ in
background noise (disjoint noise types), SNR (source 10-30 dB, target 0-20 dB), microphone position
(different transfer filters) and operating conditions (speed_level, load_level). Train is normal only,
DCASE 2025 counts (990 source, 10 target per section) times `scale`, target never below 3; test has normal
and anomalous clips in both domains; supplemental clips are noise-only or clean machine. Anomalies come in two
families (`ToyConfig.anomalies`): transient events (impulse_burst, band_tone, bearing_rattle, dropout) that
carry their time spans as `anomaly_regions`, and stationary faults (imbalance, misalignment, bearing_wear,
clogging, looseness; engine.data.toy_faults) that change the whole clip a little and span it entirely.

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
from engine.data import toy_faults, toy_sounds
from engine.data.toy_sounds import STATIONARY_KINDS, TRANSIENT_KINDS, SectionSound, rms
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
COLUMNS = (
    "clip_id",
    "relative_path",
    "machine_type",
    "section_id",
    "domain",
    "split",
    "label",
    "is_anomaly",
    "anomaly_type",
    "anomaly_kind",
    "anomaly_regions",
    "speed_level",
    "load_level",
    "mic_position_id",
    "noise_id",
    "snr_db",
    "supp_type",
    "sample_rate",
    "duration_s",
    "qa_rms",
    "qa_peak",
    "qa_clipping_ratio",
    "qa_silence_ratio",
)
LEVEL_DBFS = -20.0
#: Which anomalies a data set holds: the family name -> its kinds.
FAMILIES = {"transient": TRANSIENT_KINDS, "stationary": STATIONARY_KINDS}
ANOMALY_CHOICES = ("transient", "stationary", "all")


@dataclass(frozen=True)
class ToyConfig:
    scale: float = 0.05
    seed: int = 0
    sample_rate: int = 16000
    duration_s: float = 10.0
    sections: int = 3
    machines: tuple[str, ...] = MACHINES
    #: "transient", "stationary" or "all" (anomalous test clips alternate between the two families).
    anomalies: str = "all"
    #: Normal training clips per section (source, target), instead of the scale's.
    train_counts: tuple[int, int] | None = None
    #: Test clips per section, domain and label, instead of the scale's.
    test_each: int | None = None

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
        if self.anomalies not in ANOMALY_CHOICES:
            raise EarmarkError(
                f"anomalies must be one of {', '.join(ANOMALY_CHOICES)} (transient events, "
                f"stationary faults or both), not {self.anomalies!r}"
            )
        if self.train_counts is not None and (len(self.train_counts) != 2 or min(self.train_counts) < 1):
            raise EarmarkError(
                f"training counts must be two numbers of at least 1 (source, target normal clips "
                f"per section), not {self.train_counts}"
            )
        if self.test_each is not None and self.test_each < 1:
            raise EarmarkError(f"test clips per domain and label must be at least 1, not {self.test_each}")


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
        return (
            f"section_{self.section:02d}_{self.domain}_{self.split}_{kind}_{self.index:04d}"
            f"_spd_{self.speed}_load_{self.load}_mic_{self.mic}_noise_{self.noise or 'none'}"
        )

    @property
    def relative_path(self) -> str:
        return f"{self.machine}/{self.split}/{self.stem}.wav"


def counts(scale: float) -> dict[str, int]:
    """Clips per section and kind at a scale (rounded half up, with the floors of the contract)."""

    def scaled(n: int) -> int:
        return int(math.floor(n * scale + 0.5))

    return {
        "source_train": max(1, scaled(SOURCE_TRAIN)),
        "target_train": max(3, scaled(TARGET_TRAIN)),
        "test_each": max(5, scaled(TEST_EACH)),
        "supplemental_each": max(2, scaled(SUPPLEMENTAL_EACH)),
    }


def section_counts(config: ToyConfig) -> dict[str, int]:
    """Clips per section and kind of this data set: the scale's counts with the config's overrides."""
    n = counts(config.scale)
    if config.train_counts is not None:
        n["source_train"], n["target_train"] = (int(c) for c in config.train_counts)
    if config.test_each is not None:
        n["test_each"] = int(config.test_each)
    return n


def anomaly_kind_of(anomaly: str | None) -> str:
    """The family of an anomaly kind ("transient" or "stationary"), "" for no anomaly."""
    return next((family for family, kinds in FAMILIES.items() if anomaly in kinds), "")


def _anomaly(config: ToyConfig, section: int, job: int, index: int, domain: str, test_each: int) -> str:
    if config.anomalies != "all":
        kinds = FAMILIES[config.anomalies]
        return kinds[(index + section + job) % len(kinds)]
    # Both families: a section's anomalous test clips (source first, then target) alternate between them, so
    # any two of them hold one of each; each family cycles through its kinds across clips and sections.
    place = index + (test_each if domain == "target" else 0) + section
    kinds = FAMILIES["transient" if place % 2 == 0 else "stationary"]
    return kinds[(place // 2) % len(kinds)]


def plan(config: ToyConfig) -> list[ClipPlan]:
    n = section_counts(config)
    out = []
    for machine in config.machines:
        machine_code = MACHINES.index(machine)
        for section in range(config.sections):
            jobs = [
                ("source", "train", "normal", None, n["source_train"]),
                ("target", "train", "normal", None, n["target_train"]),
            ]
            for domain in ("source", "target"):
                jobs += [
                    (domain, "test", "normal", None, n["test_each"]),
                    (domain, "test", "anomaly", None, n["test_each"]),
                ]
            jobs += [
                (None, "supplemental", None, "noise", n["supplemental_each"]),
                (None, "supplemental", None, "machine", n["supplemental_each"]),
            ]
            for job, (domain, split, label, supp, count) in enumerate(jobs):
                for index in range(count):
                    seed = (config.seed, machine_code, section, job, index)
                    rng = np.random.default_rng(seed)
                    dom = domain or ("source", "target")[index % 2]
                    noise = None if supp == "machine" else str(rng.choice(NOISES[dom]))
                    out.append(
                        ClipPlan(
                            machine=machine,
                            section=section,
                            domain=dom,
                            split=split,
                            label=label,
                            index=index,
                            speed=int(rng.choice(SPEEDS[dom])),
                            load=int(rng.choice(LOADS[dom])),
                            mic=int(rng.choice(MICS[dom])),
                            noise=noise,
                            snr_db=None if supp else round(float(rng.uniform(*SNR_DB[dom])), 2),
                            supp_type=supp,
                            anomaly=_anomaly(config, section, job, index, dom, n["test_each"])
                            if label == "anomaly"
                            else None,
                            seed=seed,
                        )
                    )
    return out


def render(item: ClipPlan, config: ToyConfig) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clip's samples (float, within [-1, 1]) and its anomaly regions in seconds."""
    sr, n = config.sample_rate, int(round(config.duration_s * config.sample_rate))
    section = section_sound(item, config)
    rng = np.random.default_rng((*item.seed, 1))
    machine, phase = toy_sounds.machine_sound(section, item.speed, item.load, n, sr, rng)
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
    if item.anomaly in STATIONARY_KINDS:  # drawn after the normal clip, which it shares sample for sample
        broken = toy_faults.add_fault(item.anomaly, machine, phase, section, item.speed, sr, rng)
        regions = [(0.0, n / sr)]
        x = toy_sounds.microphone(broken + noise, item.mic, sr)
    elif item.anomaly is not None:
        broken, regions = toy_sounds.add_anomaly(item.anomaly, machine, sr, rng)
        x = toy_sounds.microphone(broken + noise, item.mic, sr)
    return np.clip(x * gain, -1.0, 1.0).astype(np.float32), regions


def section_sound(item: ClipPlan, config: ToyConfig) -> SectionSound:
    """The fixed character of the clip's machine section (the same for every clip of the section)."""
    return SectionSound.draw(
        item.machine, np.random.default_rng((config.seed, 7, MACHINES.index(item.machine), item.section))
    )


def _write_clip(item: ClipPlan, config: ToyConfig, out_dir: str) -> dict[str, str]:
    samples, regions = render(item, config)
    path = Path(out_dir) / item.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, config.sample_rate, subtype="PCM_16")
    qa = measure_qa(samples, config.sample_rate)
    row = {
        "clip_id": f"{item.machine}/{item.split}/{item.stem}",
        "relative_path": item.relative_path,
        "machine_type": item.machine,
        "section_id": f"{item.section:02d}",
        "domain": item.domain,
        "split": item.split,
        "label": item.label or "",
        "is_anomaly": "" if item.label is None else str(int(item.label == "anomaly")),
        "anomaly_type": item.anomaly or "",
        "anomaly_kind": anomaly_kind_of(item.anomaly),
        "anomaly_regions": json.dumps([[round(a, 4), round(b, 4)] for a, b in regions]),
        "speed_level": item.speed,
        "load_level": item.load,
        "mic_position_id": item.mic,
        "noise_id": item.noise or "",
        "snr_db": "" if item.snr_db is None else item.snr_db,
        "supp_type": item.supp_type or "",
        "sample_rate": config.sample_rate,
        "duration_s": config.duration_s,
        "qa_rms": round(qa.rms, 3),
        "qa_peak": round(qa.peak, 5),
        "qa_clipping_ratio": round(qa.clipping_ratio, 6),
        "qa_silence_ratio": round(qa.silence_ratio, 4),
    }
    return {key: str(value) for key, value in row.items()}


def generate(
    out_dir: str | Path, config: ToyConfig = ToyConfig(), progress: Progress | None = None, workers: int | None = None
) -> Path:
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
                for row in pool.map(_write_clip, items, [config] * len(items), [str(out)] * len(items), chunksize=8):
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
    (out / "toy_config.json").write_text(
        json.dumps({**asdict(config), "counts_per_section": section_counts(config)}, indent=2)
    )
    return metadata
