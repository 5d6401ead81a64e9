"""How subtle and how detectable the synthetic set's stationary faults are, per machine type.

    python tests/bench/bench_toy_faults.py [--clips 20] [--duration 10] [--seed 0]

For each machine and fault, over `--clips` test clips of section 0 (half source, half target), prints a
markdown table: the paired change of the fault's signature (toy_faults.signature_db: the same clip rendered
with and without the fault), the change of the spectral line or band the fault feeds (a sixth of an octave
around its shaft orders, the 2.4-6.4 kHz band, or the largest octave-band change for clogging), the overall
level change (median / max; the contract is at most +3 dB), and the oracle AUC of the signature alone: the
normal clips against *other* clips with the fault, i.e. how far a detector that knew exactly where to look
could get.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.data.toy import MACHINES, ToyConfig, plan, render, section_sound  # noqa: E402
from engine.data.toy_faults import rotation_rate, signature_db  # noqa: E402
from engine.data.toy_sounds import STATIONARY_KINDS, SectionSound, rms  # noqa: E402
from engine.evaluation.metrics import auc  # noqa: E402

#: The direction a signature moves in where it is not up: a choked fan loses its highs.
DOWN = {("clogging", "fan")}
FED = {
    "imbalance": "1x line",
    "misalignment": "2x line",
    "looseness": "half orders 0.5x-5.5x",
    "bearing_wear": "2.4-6.4 kHz band",
    "clogging": "largest octave-band change",
}


def fed_level(kind: str, x: np.ndarray, sound: SectionSound, speed: int, sr: int) -> np.ndarray:
    """The level (dB) of what the fault feeds: its lines, its band, or every octave band for clogging."""
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    rate = rotation_rate(sound, speed)
    orders = {"imbalance": [1.0], "misalignment": [2.0], "looseness": [k + 0.5 for k in range(6)]}.get(kind)
    if orders is not None:
        near = np.zeros(len(freqs), bool)
        for order in orders:
            near |= np.abs(np.log2(np.maximum(freqs, 1e-3) / (order * rate))) <= 1 / 12
        return np.array([10 * np.log10(power[near].sum() + 1e-30)])
    if kind == "bearing_wear":
        return np.array([10 * np.log10(power[(freqs >= 2400) & (freqs <= 6400)].sum() + 1e-30)])
    return np.array(
        [
            10 * np.log10(power[(freqs >= 125 * 2 ** (o - 0.5)) & (freqs < 125 * 2 ** (o + 0.5))].sum() + 1e-30)
            for o in range(7)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    half = args.clips // 2
    print(
        "| machine | fault | signature change, median (min..max) | fed line / band, median dB | "
        "level change dB, median / max | oracle AUC |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for machine in MACHINES:
        config = ToyConfig(
            scale=0.01,
            seed=args.seed,
            duration_s=args.duration,
            sections=1,
            machines=(machine,),
            anomalies="stationary",
            test_each=2 * half,
        )
        normals = [p for p in plan(config) if p.split == "test" and p.label == "normal" and p.section == 0]
        source, target = normals[: 2 * half], normals[2 * half :]
        paired, others = source[:half] + target[:half], source[half:] + target[half:]
        clean = {p.stem: render(p, config)[0] for p in paired}
        for kind in STATIONARY_KINDS:
            sign = -1.0 if (kind, machine) in DOWN else 1.0
            changes, fed, levels, normal_sig, fault_sig = [], [], [], [], []
            for item, other in zip(paired, others, strict=True):
                sound, sr = section_sound(item, config), config.sample_rate
                a, b = clean[item.stem], render(dataclasses.replace(item, anomaly=kind), config)[0]
                before, after = (signature_db(kind, x, sound, item.speed, sr) for x in (a, b))
                changes.append(after - before)
                delta = fed_level(kind, b, sound, item.speed, sr) - fed_level(kind, a, sound, item.speed, sr)
                fed.append(float(np.max(np.abs(delta))) if kind == "clogging" else float(delta[0]))
                levels.append(20 * np.log10(rms(b) / rms(a)))
                normal_sig.append(sign * before)
                broken_other = render(dataclasses.replace(other, anomaly=kind), config)[0]
                fault_sig.append(sign * signature_db(kind, broken_other, section_sound(other, config), other.speed, sr))
            oracle = auc(np.r_[np.zeros(len(normal_sig)), np.ones(len(fault_sig))], np.r_[normal_sig, fault_sig])
            unit = "dB/oct" if kind == "clogging" else "dB"
            print(
                f"| {machine} | {kind} | {np.median(changes):+.1f} {unit} ({min(changes):+.1f}..{max(changes):+.1f}) "
                f"| {FED[kind]}: {np.median(fed):+.1f} | {np.median(levels):+.2f} / {max(levels):+.2f} "
                f"| {oracle:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
