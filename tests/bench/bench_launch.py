"""How long `earmark` takes from launch to its first painted window, and what loads before it.

Each run starts a fresh Python process that runs the console script's window code (`app.main.main([])`,
no project, a private config folder) with a Qt event filter that notes the first paint event and exits at
once; the time counts from just before the process is started, so it includes the interpreter's own
start. Offscreen by default (QT_QPA_PLATFORM=offscreen), or under a real X server with `--xvfb`.

    python tests/bench/bench_launch.py [--runs 5] [--xvfb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])

class Watch(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print(f"PAINT {time.time():.6f}", flush=True)
            os._exit(0)
        return False

watch = Watch()
app.installEventFilter(watch)
from app.main import main
main([])
"""


def launch_once(env: dict[str, str]) -> float:
    start = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("PAINT "):
            return float(line.split()[1]) - start
    raise RuntimeError(f"no paint seen:\n{out.stdout}\n{out.stderr}")


def import_seconds(module: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--xvfb", action="store_true", help="use a real X server (Xvfb) instead of offscreen")
    args = parser.parse_args()
    config = tempfile.mkdtemp(prefix="earmark-bench-")
    env = {**os.environ, "PYTHONPATH": str(REPO), "EARMARK_CONFIG_DIR": config, "XDG_CONFIG_HOME": config}
    xvfb = None
    if args.xvfb:
        display = ":97"
        xvfb = subprocess.Popen(
            ["Xvfb", display, "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        times = [launch_once(env) for _ in range(args.runs)]
        print(
            f"launch to first paint ({'Xvfb' if args.xvfb else 'offscreen'}, {args.runs} runs): "
            f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
        )
        for module in ("PySide6.QtWidgets", "app.main_window", "torch", "engine.detectors.runs"):
            print(f"import {module}: {import_seconds(module, env):.2f} s (fresh process)")
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load:.2f} while measuring")
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
        shutil.rmtree(config, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
