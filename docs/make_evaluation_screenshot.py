"""Writes docs/evaluation.png, the README's picture of the evaluation dock (View > Evaluation): a small
demo-like project (two machines, 2 s clips) with the demo's detectors fitted and scored, opened as a user
opens it (`earmark open PROJECT`) on an X server with one 1366 x 768 screen (Xvfb); the dock shows the
figures of every detector, the ROC curves of fan section 00's source domain and one detector's score
histogram with its threshold; a click on the histogram's fullest bar has filtered the clip table to its
clips. With no PROJECT the project is built first (a few minutes on two cores).

    python docs/make_evaluation_screenshot.py [PROJECT] [docs/evaluation.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs.make_side_by_side_screenshot import shoot  # noqa: E402
from engine.data.toy import ToyConfig  # noqa: E402
from engine.demo import DemoPlan  # noqa: E402

#: Enough test clips per section for curves and bins with a shape; short clips keep the build quick.
PLAN = DemoPlan(ToyConfig(scale=0.06, seed=2, duration_s=2.0, sections=1, machines=("fan", "valve")), ae_epochs=5)


def main(project: Path | None, out: Path) -> int:
    return shoot(project, out, "--evaluation", PLAN)


if __name__ == "__main__":
    sys.exit(
        main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else None,
            Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "evaluation.png",
        )
    )
