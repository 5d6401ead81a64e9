"""Writes docs/window_1366x768.png and docs/labelling_1366x768.png, the README's pictures of the window on a
laptop-sized screen: the window is started as a user starts it (`earmark open PROJECT`) on an X server with one
1366 x 768 screen (Xvfb), the whole screen is captured (ImageMagick's `import -window root`), and Ctrl+Q
quits it. With no PROJECT, a small demo project is built first (the tests' size: a minute on two cores).

    python docs/make_laptop_screenshots.py [PROJECT] [docs]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.xserver import press_keys, x_environment, xvfb  # noqa: E402

CHILD = ROOT / "tests" / "app" / "x11_window.py"


def build_small_demo(folder: Path) -> Path:
    import torch

    from engine.demo import build_demo
    from engine.jobs import Progress
    from tests.app.conftest import TINY_DEMO

    build_demo(folder, TINY_DEMO, torch.device("cpu"), Progress())
    return folder


def capture(project: Path, out: Path, config: Path, *options: str) -> None:
    """Start the window on `project` (with x11_window.py's `options`), capture the screen into `out`, quit."""
    with xvfb(1366, 768) as display:
        command = [sys.executable, str(CHILD), str(project), *options]
        child = subprocess.Popen(
            command, env=x_environment(display, config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output = []
        for line in child.stdout:
            output.append(line)
            if line.startswith("LAYOUT "):
                break
        else:
            raise SystemExit("the window did not open:\n" + "".join(output)[-3000:])
        subprocess.run(["import", "-display", display, "-window", "root", str(out)], check=True)
        press_keys(display, "Control_L", "q")
        status = child.wait(timeout=60)
        print(f"wrote {out} (the window quit with status {status})")


def main(project: Path | None, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temp:
        source = project or build_small_demo(Path(temp) / "source" / "demo")
        copy = Path(temp) / "demo"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("audio", "features"))
        capture(copy, folder / "window_1366x768.png", Path(temp) / "config")
        # A fresh config: the default layout again.
        capture(copy, folder / "labelling_1366x768.png", Path(temp) / "config2", "--labelling")
    return 0


if __name__ == "__main__":
    sys.exit(
        main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else None, Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs"
        )
    )
