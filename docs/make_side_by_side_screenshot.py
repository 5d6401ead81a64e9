"""Writes docs/side_by_side.png, the README's picture of every detector's anomaly map on one clip: a small
demo-like project (one machine, 4 s clips) with the demo's detectors fitted (knn, patch_memory, dcase_ae,
ensemble), opened as a user opens it (`earmark open PROJECT`) on an X server with one 1366 x 768 screen (Xvfb);
the most anomalous test clip with a ground-truth region is shown with patch_memory first and the others side
by side, one column each on the normalised scale, and the whole screen is captured. With no PROJECT the
project is built first (a few minutes on two cores).

    python docs/make_side_by_side_screenshot.py [PROJECT] [docs/side_by_side.png]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs.make_laptop_screenshots import capture  # noqa: E402
from engine.data.toy import ToyConfig  # noqa: E402
from engine.demo import DemoPlan  # noqa: E402

#: Longer clips than the tests' demo, so each map has time cells enough to read; one machine keeps it quick.
PLAN = DemoPlan(ToyConfig(scale=0.03, seed=1, duration_s=4.0, sections=1, machines=("fan",)), ae_epochs=5)


def build(folder: Path, plan: DemoPlan = PLAN) -> Path:
    import torch

    from engine.demo import build_demo
    from engine.jobs import Progress

    build_demo(folder, plan, torch.device("cpu"), Progress())
    return folder


def shoot(project: Path | None, out: Path, option: str, plan: DemoPlan = PLAN) -> int:
    """Capture the window on a copy of `project` (built from `plan` when None) started with x11_window.py's
    `option`, into `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temp:
        source = project or build(Path(temp) / "source" / "demo", plan)
        copy = Path(temp) / "demo"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("audio", "features"))
        capture(copy, out, Path(temp) / "config", option)
    return 0


def main(project: Path | None, out: Path) -> int:
    return shoot(project, out, "--every-detector")


if __name__ == "__main__":
    sys.exit(
        main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else None,
            Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "side_by_side.png",
        )
    )
