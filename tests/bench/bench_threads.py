"""Torch's thread count against a busy machine: a dcase_ae-sized training step and k-NN scoring, timed with
another process spinning a core, under Earmark's policy (engine.threads), one thread, and torch's default.

Each setting runs in a fresh process (OpenMP reads its settings when torch is imported):
- policy: `import engine` (idle OpenMP threads sleep) and `configure_threads("small")`;
- 1 thread: torch.set_num_threads(1), OpenMP's own waiting;
- default: torch as it comes (one thread per core, spinning waits).

    python tests/bench/bench_threads.py [--steps 30] [--no-busy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, statistics, sys, time
setting, steps = sys.argv[1], int(sys.argv[2])
if setting == "policy":
    import engine  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
    from engine.threads import configure_threads
import torch
if setting == "policy":
    configure_threads("small")
elif setting == "1 thread":
    torch.set_num_threads(1)
from engine.detectors.dcase_ae.model import AENet

torch.manual_seed(0)
model = AENet(640)
optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
batch = torch.randn(256, 640)
train = []
for step in range(steps + 3):
    start = time.perf_counter()
    optimiser.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(model(batch), batch)
    loss.backward()
    optimiser.step()
    if step >= 3:  # the first steps warm up allocators and kernels
        train.append(time.perf_counter() - start)
bank, queries = torch.randn(6000, 256), torch.randn(1500, 256)
knn = []
for rep in range(max(3, steps // 6) + 1):
    start = time.perf_counter()
    with torch.inference_mode():
        torch.cdist(queries, bank).topk(4, largest=False).values.mean(1)
    if rep:
        knn.append(time.perf_counter() - start)
print(json.dumps({"threads": torch.get_num_threads(), "train_ms": 1000 * statistics.median(train),
                  "knn_ms": 1000 * statistics.median(knn), "wait": os.environ.get("OMP_WAIT_POLICY", "")}))
"""

SETTINGS = ("policy", "1 thread", "default")


def measure(setting: str, steps: int) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "EARMARK_THREADS")
    }
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, setting, str(steps)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps timed per setting (default 30)")
    parser.add_argument("--no-busy", action="store_true", help="time without the competing busy process")
    args = parser.parse_args()
    busy = None
    if not args.no_busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        results = {setting: measure(setting, args.steps) for setting in SETTINGS}
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    print(
        f"{os.cpu_count()} cores, {'with' if busy else 'without'} a busy process spinning a core, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'setting':10} {'threads':>7} {'train step (ms)':>16} {'knn scoring (ms)':>17}")
    for setting, r in results.items():
        print(f"{setting:10} {r['threads']:>7} {r['train_ms']:>16.1f} {r['knn_ms']:>17.1f}")
    base = results["default"]
    for setting in ("policy", "1 thread"):
        r = results[setting]
        print(
            f"{setting} vs torch's default: training {base['train_ms'] / r['train_ms']:.1f}x faster, "
            f"k-NN scoring {base['knn_ms'] / r['knn_ms']:.1f}x faster"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
