"""What a finished training left behind, read back for the results dialog: per run, its per-epoch curves,
its confusion matrix and a line or two of figures."""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.classifiers.leak import META
from engine.classifiers.leak import workspace as leak_workspace
from engine.classifiers.sound import SUMMARY
from engine.classifiers.sound import workspace as sound_workspace
from engine.detectors.leak.segments import MODES
from engine.store.project import Project
from engine.training import HISTORY


@dataclass
class TrainedRun:
    name: str
    history: list[dict]  # one row per epoch
    metric: str  # the figure that chose the best epoch
    best_epoch: int
    labels: list[str]  # of the confusion matrix
    confusion: list[list[int]]  # rows: truth, columns: prediction
    confusion_of: str
    lines: list[str]


def trained_runs(project: Project) -> list[TrainedRun]:
    found = []
    for mode in MODES:
        folder = leak_workspace(project, mode)
        try:
            meta = json.loads((folder / META).read_text())
            history = json.loads((folder / HISTORY).read_text())
        except (OSError, ValueError, KeyError):
            continue
        figures = meta["best_epoch_figures"]
        found.append(
            TrainedRun(
                f"leak_{mode}",
                history,
                "file_leak_f1",
                meta["best_epoch"],
                meta["confusion"]["labels"],
                meta["confusion"]["matrix"],
                meta["confusion"]["of"],
                [
                    f"Best file-level leak F1 {meta['best_file_leak_f1']:.3f} at epoch {meta['best_epoch']} of "
                    f"{meta['epochs_run']}; precision {figures['file_precision']:.3f}, "
                    f"recall {figures['file_recall']:.3f}",
                    f"{meta['train_segments']} training segments from {meta['train_files']} files; "
                    f"{meta['validation_files']} validation files; classes {', '.join(meta['class_names'])}",
                ],
            )
        )
    try:
        summary = json.loads((sound_workspace(project) / SUMMARY).read_text())
    except (OSError, ValueError):
        return found
    for run in summary["runs"]:
        try:
            history = json.loads((sound_workspace(project) / f"seed_{run['seed']}" / "history.json").read_text())
        except (OSError, ValueError):
            continue
        recall = ", ".join(
            f"{name} {value:.2f}" for name, value in zip(summary["class_names"], run["per_class_recall"], strict=True)
        )
        found.append(
            TrainedRun(
                f"sound classifier, seed {run['seed']}",
                history,
                "macro_f1",
                run["best_epoch"],
                summary["class_names"],
                run["confusion"],
                "validation clips",
                [
                    f"Accuracy {run['accuracy']:.3f}, macro F1 {run['macro_f1']:.3f} "
                    f"(over {len(summary['runs'])} seeds: "
                    f"{summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f}); split {summary['split']}",
                    f"Recall per class: {recall}",
                ],
            )
        )
    return found
