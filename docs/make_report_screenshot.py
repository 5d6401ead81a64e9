"""Writes docs/report.png, the README's picture of `earmark report`: the tests' small demo project (two
machines, one section, dcase_ae, knn, patch_memory and their ensemble), knn's fan threshold set for a 20 %
false-positive rate on its training normals, the report written to HTML and opened in headless Chromium at
1366 x 2000. With no PROJECT the project is built first (about a minute on two cores).

    python docs/make_report_screenshot.py [PROJECT] [docs/report.png]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import main as earmark  # noqa: E402


def build(folder: Path) -> Path:
    import torch

    from engine.demo import build_demo
    from engine.jobs import Progress
    from tests.app.conftest import TINY_DEMO

    build_demo(folder, TINY_DEMO, torch.device("cpu"), Progress())
    return folder


def main(project: Path | None, out: Path) -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("needs Chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "demo"
        if project is None:
            build(folder)
        else:
            shutil.copytree(project, folder, ignore=shutil.ignore_patterns("audio"))
        earmark(["threshold", str(folder), "--detector", "knn", "--group", "fan/section_00", "--fpr", "0.2"])
        page = Path(temp) / "report.html"
        if earmark(["report", str(folder), str(page)]) != 0:
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={out.resolve()}",
                "--window-size=1366,2000",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(args[0]) if args else None, Path(args[1]) if len(args) > 1 else ROOT / "docs" / "report.png"))
