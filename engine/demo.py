"""The demo project: the synthetic data set, imported, with every demo detector fitted and its test clips
scored. The CLI (`earmark demo --no-gui`) and the window (`earmark demo`) build it with the same code;
whatever is already there is reused, so a second run only opens it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.data.toy import ToyConfig
from engine.jobs import Progress

#: Detectors the demo fits, with their demo settings.
DEMO_DETECTORS = ("knn", "patch_memory", "dcase_ae")


@dataclass
class DemoPlan:
    toy: ToyConfig = field(default_factory=ToyConfig)
    #: Training epochs of dcase_ae: 20 instead of the baseline's 100, which takes minutes on a CPU.
    ae_epochs: int = 20
    detectors: tuple[str, ...] = DEMO_DETECTORS

    def settings(self, detector: str) -> dict:
        return {"epochs": self.ae_epochs} if detector == "dcase_ae" else {}


def is_ready(folder: Path, plan: DemoPlan) -> bool:
    """True when the demo project exists with every detector fitted and scored (nothing left to do)."""
    from engine.store import Project, results

    if not (folder / "project.sqlite").is_file():
        return False
    with Project.open(folder) as project:
        return all(results.latest_models(project, d) and results.latest_scores(project, d, split="test")
                   for d in plan.detectors)


def build_demo(folder: Path, plan: DemoPlan, device: torch.device,
               progress_for: Callable[[str], Progress], say: Callable[[str], None] = lambda line: None) -> list:
    """Make (or complete) the demo project in `folder`. `progress_for(step)` gives the Progress of each
    step (synthesise, import, fit and score each detector); `say` hears what is being done. Returns the
    problems reported along the way (lines)."""
    from engine.data.importers import import_source
    from engine.data.toy import generate
    from engine.detectors import runs
    from engine.store import Project, results

    problems: list[str] = []
    audio = folder / "audio"
    if not (audio / "metadata.csv").is_file():
        say(f"Synthesising the demo data set into {audio} ...")
        with progress_for("synthesising") as progress:
            generate(audio, plan.toy, progress)
    project = Project.open(folder) if (folder / "project.sqlite").exists() else Project.create(folder)
    with project:
        with progress_for("importing") as progress:
            report = import_source(project, audio, "metadata", progress)
        problems += [str(p) for p in report.problems]
        if report.added or report.problems:
            say(report.lines()[0])
        session = runs.Session(project, device)
        for detector in plan.detectors:
            if not results.latest_models(project, detector):
                say(f"Fitting {detector} on every machine and section ...")
                with progress_for(f"fitting {detector}") as progress:
                    runs.fit(session, detector, plan.settings(detector), progress=progress)
            if not results.latest_scores(project, detector, split="test"):
                say(f"Scoring the test clips with {detector} ...")
                with progress_for(f"scoring {detector}") as progress:
                    runs.score(session, detector, "test", progress=progress)
                problems += progress.problems
    return problems
