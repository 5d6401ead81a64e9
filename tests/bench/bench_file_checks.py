"""Benchmark: what noticing changed files costs a scoring run, and an import holding a file that lies.

    python tests/bench/bench_file_checks.py [--clips 2000]

Prints the time of the changed-file check (one stat per clip) over N imported clips beside the time of
reading those clips from the project (which every run does anyway), and the wall time of `earmark import`
of a folder with the 1.7 kB MP3 whose header claims 4.9e12 frames among 8 good files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from engine.data.changes import refresh_changed  # noqa: E402
from engine.data.importers import import_files  # noqa: E402
from engine.store import Project  # noqa: E402
from tests.engine.test_bad_audio import lying_mp3, recordings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        base = (0.1 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32)
        paths = []
        for i in range(args.clips):
            paths.append(root / "audio" / f"c{i}.wav")
            sf.write(paths[-1], base + i * 1e-4, 16000)
        with Project.create(root / "project") as project:
            import_files(project, paths)
            start = time.perf_counter()
            clips = project.clips()
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            refresh_changed(project, clips)
            check_s = time.perf_counter() - start
        print(
            f"{args.clips} clips: changed-file check {check_s * 1000:.1f} ms ({check_s / args.clips * 1e6:.1f} us "
            f"per clip); reading the clips from the project {read_s * 1000:.1f} ms"
        )

        folder = recordings(root / "batch", {"liar.mp3": "test,normal", "blip.wav": "test,anomaly"})
        lying_mp3(folder / "liar.mp3")
        sf.write(folder / "blip.wav", np.zeros(160, np.float32), 16000)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, "-m", "app.main", "new", str(root / "p2")], check=True, env=env, capture_output=True
        )
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "app.main", "import", str(root / "p2"), str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(
            f"earmark import of 9 files with the lying MP3: {time.perf_counter() - start:.2f} s wall "
            f"(process start included): {done.stdout.strip()}"
        )


if __name__ == "__main__":
    main()
