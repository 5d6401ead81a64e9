"""The work behind each menu entry and each drop, as job functions for the engine thread.

Each function returns a job function `(worker, progress) -> result` that calls the engine only; the result
is a plain value the window shows when the job's `job_finished` signal arrives on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.engine_thread import EngineWorker, JobFunction
from engine.errors import EarmarkError
from engine.jobs import FIT_SHARE, Progress, spans
from engine.store import Project


@dataclass
class DropResult:
    """Files dropped on the window (or clips scored again): the clips they became, their scores per detector,
    which group's models scored each and how that group was found (`engine.detectors.drops.DropVerdict`),
    what was skipped."""

    clip_ids: list[str]
    scored: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    note: str = ""
    verdicts: dict[str, object] = field(default_factory=dict)

    def add(self, verdicts) -> None:
        for verdict in verdicts:
            self.verdicts[verdict.clip_id] = verdict
            self.scored[verdict.clip_id] = {d: det.score for d, det in verdict.detections.items()}


@dataclass
class FitResult:
    fitted: list[str]  # "detector group" per new model
    scored: int
    warnings: list[str] = field(default_factory=list)  # "detector for group was fitted on only ..." per model


def open_project(project: Project) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> Project:
        worker.open_session(project)
        return project

    return run


def set_device(choice: str) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> str:
        worker.set_device(choice)
        return str(worker.session.device) if worker.session else choice

    return run


def drop_and_score(paths: Sequence[str], group: str | None) -> JobFunction:
    """Import dropped files into the inbox and score them: each with its own group's models where its machine
    and section are known, else with `group`'s, else (None: auto) with the closest group's."""

    def run(worker: EngineWorker, progress: Progress) -> DropResult:
        from engine.data.importers import import_files
        from engine.detectors import drops
        from engine.store import results

        session = worker.require_session()
        project = session.project
        report = import_files(project, paths, progress.child("importing: "), source="inbox")
        result = DropResult(list(report.clip_ids), skipped=[str(p) for p in report.problems])
        sources = project.clip_sources(result.clip_ids)  # the dropped clips' rows only
        # A file that is already one of the project's data-set clips is shown, not scored by another
        # group's models: that score would count in the evaluation of the wrong group.
        known = [c for c in result.clip_ids if sources.get(c) != "inbox"]
        if known:
            result.note = f"{len(known)} file(s) already in the project as data-set clips: shown, not scored again"
        inbox = [c for c in result.clip_ids if sources.get(c) == "inbox"]
        if not inbox:
            return result
        if not results.models(project):
            result.note = "not scored: no detector is fitted yet (Train > Fit all detectors)"
            return result
        result.add(
            drops.score_drops(session, [project.clip(clip_id) for clip_id in inbox], group, progress.child("scoring: "))
        )
        return result

    return run


def rescore(clip_ids: Sequence[str]) -> JobFunction:
    """Score clips again with their own group's models (after their machine and section were set); a clip
    that still has none goes to the closest group, as a drop does."""

    def run(worker: EngineWorker, progress: Progress) -> DropResult:
        from engine.detectors import drops

        session = worker.require_session()
        project = session.project
        result = DropResult(list(clip_ids))
        result.add(drops.score_drops(session, [project.clip(clip_id) for clip_id in clip_ids], None, progress))
        return result

    return run


def fit_detectors(
    detectors: Sequence[str],
    group: str | None = None,
    settings: dict | None = None,
    then_score: bool = True,
    weights: Sequence[float] | None = None,
    resume: bool = False,
) -> JobFunction:
    """Fit each detector (on every group, or one), then score the test clips with it. Each detector owns a
    share of the job's progress, in proportion to `weights` (its expected cost; equal shares without). The
    ensemble comes last and combines the members fitted just before it, rather than fitting them again.
    `resume` continues interrupted trainings from their checkpoints (`earmark fit --resume`)."""

    def run(worker: EngineWorker, progress: Progress) -> FitResult:
        from engine.detectors import runs

        session = worker.require_session()
        fitted, scored, warnings = [], 0, []
        tests = [c for c in session.project.clips(split="test") if group is None or c.group == group]
        fit_part = FIT_SHARE if then_score and tests else 1.0
        ordered = sorted(
            zip(detectors, weights or [1.0] * len(detectors), strict=True), key=lambda pair: pair[0] == "ensemble"
        )  # stable: the others keep their order
        fitted_now: dict | None = {} if "ensemble" in detectors and len(detectors) > 1 else None
        for index, ((detector, _), (low, high)) in enumerate(zip(ordered, spans([w for _, w in ordered]), strict=True)):
            prefix = f"{detector} ({index + 1}/{len(detectors)}): " if len(detectors) > 1 else ""
            middle = low + (high - low) * fit_part
            models = runs.fit(
                session,
                detector,
                settings or {},
                group,
                progress.child(prefix, span=(low, middle)),
                fitted_now,
                resume=resume,
            )
            fitted += [f"{m.detector} {m.group_key}" for m in models]
            warnings += [m.warning for m in models if m.warning]
            if then_score and tests:
                step = progress.child(f"{prefix}scoring: ", span=(middle, high))
                scored += runs.score(session, detector, "test", group, step).scored
        return FitResult(fitted, scored, warnings)

    return run


def score_all(detectors: Sequence[str], split: str | None = "test") -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> int:
        from engine.detectors import runs

        session = worker.require_session()
        if not detectors:
            raise EarmarkError("no detector is fitted yet; fit one first (Train > Fit all detectors)")
        return sum(
            runs.score(session, d, split, progress=progress.child(f"{d}: ", i, len(detectors))).scored
            for i, d in enumerate(detectors)
        )

    return run


def propose_all(choice) -> JobFunction:
    """Proposals on every clip the chosen detector scored (an `app.labelling.proposal_panel.ProposalChoice`)."""

    def run(worker: EngineWorker, progress: Progress) -> int:
        from engine.detectors.registry import finding_label
        from engine.labels import proposals

        session = worker.require_session()
        return proposals.propose_all(
            session.project,
            choice.detector,
            progress,
            on_ratio=choice.on_ratio,
            off_ratio=choice.off_ratio,
            min_duration_s=choice.min_duration_s,
            merge_gap_s=choice.merge_gap_s,
            label=finding_label(choice.detector),
        )

    return run


def enrol(detector: str, clip_ids: Sequence[str]) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.detectors import runs

        models = runs.enrol(worker.require_session(), detector, clip_ids, progress)
        return [f"{m.detector} {m.group_key}" for m in models]

    return run


def import_data(source: str | None = None, files: Sequence[str] = ()) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.data.importers import import_files, import_source

        project = worker.require_session().project
        report = import_files(project, files, progress) if files else import_source(project, source, None, progress)
        return report.lines()

    return run


def locate_missing(folder: str) -> JobFunction:
    """Look for the project's missing recordings below `folder` and re-point those whose checksum matches."""

    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.store.relocate import locate_missing as locate

        return locate(worker.require_session().project, folder, progress=progress).lines()

    return run


def export_dcase(out: str) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.evaluation.dcase_io import export_dcase as export

        written = export(worker.require_session().project, out)
        return [f"{detector}: {len(files)} file(s) in {files[0].parent}" for detector, files in written.items()]

    return run


def build_demo(folder: Path, plan, detectors: Sequence[str] | None = None) -> JobFunction:
    """Make the demo project, or the part of it `detectors` names (engine.demo.build_demo)."""

    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.demo import build_demo as build
        from engine.device import pick_device

        return build(folder, plan, pick_device(worker.device_choice), progress, detectors=detectors)

    return run


def save_weights(name: str, value: str) -> JobFunction:
    """Check the weights by loading them, then remember them (engine.weights)."""

    def run(worker: EngineWorker, progress: Progress) -> str:
        from engine import weights

        progress.update(0, 1, f"loading {name} to check it")
        return weights.add(name, value)

    return run


def train_leak(modes: Sequence[str], settings: dict, resume: bool = False) -> JobFunction:
    """Train the leak classifier in each mode from the project's labelled regions, then score every clip with
    it (its lane and proposals appear in the window). Returns the lines to show."""

    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.classifiers.leak import train_and_score

        return train_and_score(worker.require_session(), modes, settings, progress, resume)[1]

    return run


def train_sound(settings: dict, resume: bool = False) -> JobFunction:
    def run(worker: EngineWorker, progress: Progress) -> list[str]:
        from engine.classifiers.sound import sound_config
        from engine.classifiers.sound import train_sound as train

        return train(worker.require_session(), sound_config(settings), progress, resume).lines()

    return run
