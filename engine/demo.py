"""The demo project: the synthetic data set, imported, with every demo detector fitted and its test clips
scored. The CLI (`earmark demo --no-gui`) and the window (`earmark demo`) build it with the same code;
whatever is already there is reused, so a second run only opens it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.data.toy import ToyConfig
from engine.jobs import FIT_SHARE, Progress, spans
from engine.threads import configure_threads

if TYPE_CHECKING:  # the window imports this module before it is drawn, torch only after
    import torch

#: Detectors the demo fits, with their demo settings.
DEMO_DETECTORS = ("knn", "patch_memory", "dcase_ae", "ensemble")


@dataclass
class DemoPlan:
    toy: ToyConfig = field(default_factory=ToyConfig)
    #: Training epochs of dcase_ae: 20 instead of the baseline's 100, which takes minutes on a CPU.
    ae_epochs: int = 20
    detectors: tuple[str, ...] = DEMO_DETECTORS

    def settings(self, detector: str) -> dict:
        if detector == "ensemble":  # its members as the demo fits them on their own
            return {"member_settings": f"dcase_ae.epochs={self.ae_epochs}"}
        return {"epochs": self.ae_epochs} if detector == "dcase_ae" else {}


def missing(folder: Path, plan: DemoPlan) -> list[str]:
    """The demo detectors not yet fitted and scored in `folder` (all of them when there is no project)."""
    from engine.store import Project, results

    if not (folder / "project.sqlite").is_file():
        return list(plan.detectors)
    with Project.open(folder) as project:
        return [
            d
            for d in plan.detectors
            if not (results.latest_models(project, d) and results.latest_scores(project, d, split="test"))
        ]


#: Each step's share of a first build's time, measured on 2 cores (synthesis, import, then each detector's
#: fit and score), so the job's one fraction and its time left move evenly.
STEP_WEIGHTS = {
    "synthesising": 15.0,
    "importing": 3.0,
    "knn": 12.0,
    "patch_memory": 20.0,
    "dcase_ae": 90.0,
    "ensemble": 4.0,
}


def build_demo(
    folder: Path,
    plan: DemoPlan,
    device: torch.device,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda line: None,
    detectors: Sequence[str] | None = None,
) -> list:
    """Make (or complete) the demo project in `folder`: the data set synthesised and imported, and each of
    `detectors` (default: the plan's) fitted and its test clips scored. Every step owns a share of
    `progress`; `say` hears what is being done. Returns the problems reported along the way (lines)."""
    from engine.data.importers import import_source
    from engine.data.toy import generate
    from engine.detectors import runs
    from engine.store import Project, results

    configure_threads("small")
    progress = progress or Progress()
    detectors = list(plan.detectors if detectors is None else detectors)
    names = ["synthesising", "importing", *detectors]
    share = dict(zip(names, spans([STEP_WEIGHTS.get(n, 20.0) for n in names]), strict=True))
    problems: list[str] = []
    audio = folder / "audio"
    if not (audio / "metadata.csv").is_file():
        say(f"Synthesising the demo data set into {audio} ...")
        generate(audio, plan.toy, progress.child("synthesising: ", span=share["synthesising"]))
    project = Project.open(folder) if (folder / "project.sqlite").exists() else Project.create(folder)
    with project:
        report = import_source(project, audio, "metadata", progress.child("importing: ", span=share["importing"]))
        problems += [str(p) for p in report.problems]
        if report.added or report.problems:
            say(report.lines()[0])
        session = runs.Session(project, device)
        # The ensemble combines the members fitted here (or by an earlier part of the build, such as the first
        # detector the window opens with) instead of fitting them again.
        fitted_now = {
            (d, key): session.model(record)
            for d in plan.detectors
            if d != "ensemble"
            for key, record in results.latest_models(project, d).items()
            if "ensemble" in detectors and not record.stale
        }
        for detector in detectors:
            low, high = share[detector]
            middle = low + (high - low) * FIT_SHARE
            if not results.latest_models(project, detector):
                say(f"Fitting {detector} on every machine and section ...")
                runs.fit(
                    session,
                    detector,
                    plan.settings(detector),
                    progress=progress.child(f"fitting {detector}: ", span=(low, middle)),
                    fitted_now=fitted_now,
                )
            if not results.latest_scores(project, detector, split="test"):
                say(f"Scoring the test clips with {detector} ...")
                step = progress.child(f"scoring {detector}: ", span=(middle, high))
                runs.score(session, detector, "test", progress=step)
                problems += step.problems
    return problems
