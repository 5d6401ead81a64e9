"""Benchmark: synthesising the demo-sized data set and importing it, against a floor measured in the same run.

    python tests/bench/bench_import.py [--scale 0.05]

Prints the generator's time, the import throughput (clips/s), the floor (reading and decoding every file
once, the least an import that checks every sample can do) and their ratio, and the time of a second import
that finds every clip already present.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.data.importers import import_source  # noqa: E402
from engine.data.toy import ToyConfig, generate, plan  # noqa: E402
from engine.store import Project  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args()
    config = ToyConfig(scale=args.scale, seed=0)
    clips = len(plan(config))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "toy"
        start = time.perf_counter()
        generate(data, config)
        generated = time.perf_counter() - start

        files = sorted(data.rglob("*.wav"))
        start = time.perf_counter()
        for path in files:
            path.read_bytes()
            sf.read(str(path), dtype="float32")
        floor = time.perf_counter() - start

        with Project.create(Path(tmp) / "project") as project:
            start = time.perf_counter()
            report = import_source(project, data)
            imported = time.perf_counter() - start
            start = time.perf_counter()
            import_source(project, data)
            again = time.perf_counter() - start
    assert report.added == clips
    print(
        f"machine: {os.cpu_count()} CPU cores; data set: scale {args.scale}, {clips} clips of "
        f"{config.duration_s:g} s at {config.sample_rate} Hz"
    )
    print(f"generate:         {generated:6.1f} s  ({clips / generated:6.1f} clips/s)")
    print(f"floor (read+decode each file once): {floor:6.2f} s  ({clips / floor:6.1f} clips/s)")
    print(
        f"import:           {imported:6.2f} s  ({clips / imported:6.1f} clips/s)  "
        f"= {floor / imported:.2f} x the floor's throughput"
    )
    print(f"import again:     {again:6.2f} s  (every clip recognised by checksum)")


if __name__ == "__main__":
    main()
