"""Training the leak detector from a project's labelled regions, in binary (NOLEAK / LEAK) or 5-class mode
(LEAK, NORMAL, QUIET, RANDOM, MECHANICAL, with an auxiliary leak-vs-rest head: loss = class-weighted cross
entropy + 0.5 x binary cross entropy), with model selection on file-level leak F1. The binary mode weights
its two classes too: a survey holds far fewer leak files than others, and unweighted it learns "never LEAK".

Each mode trains in its own folder, `artifacts/classifiers/leak_<mode>/` (best weights, `model_meta.json`,
`history.json`, checkpoints to resume), and the finished model is registered in the project as the detector
`leak_<mode>` for every group, so it scores clips (a leak-probability lane and proposals) like any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.classifiers.leak_data import SegmentSet, data_signature, labelled_segments
from engine.classifiers.splits import grouped_split, split_by_value
from engine.detectors import runs
from engine.detectors.leak.detector import META, detector_for
from engine.detectors.leak.model import LeakCNN, leak_probabilities
from engine.detectors.leak.segments import LEAK, MODES, LeakJudging, classes_for
from engine.detectors.leak.voting import EVAL_METHOD, judge_files
from engine.detectors.registry import configure
from engine.errors import EarmarkError
from engine.files import write_text_atomic
from engine.jobs import Progress
from engine.store import results
from engine.store.project import Project
from engine.training import LoopConfig, Outcome, Trainer, load_best


@dataclass
class LeakConfig(LoopConfig, LeakJudging):
    mode: str = "binary"
    batch_size: int = 512
    aux_weight: float = 0.5
    #: Share of labelled files held out for model selection when the project's splits do not give one.
    validation_fraction: float = 0.25

    def __post_init__(self) -> None:
        classes_for(self.mode)
        self.check("leak classifier")
        if self.warm_up_epochs:
            raise EarmarkError(
                "leak classifier: warm_up_epochs is for models with an encoder to keep frozen; this one "
                "trains as a whole"
            )
        if self.segment_frames < 1 or self.long_segment_s <= 0 or not 0 < self.threshold < 1:
            raise EarmarkError(
                "leak classifier: segment_frames >= 1, long_segment_s > 0 and 0 < threshold < 1 are required"
            )


def leak_config(mode: str, settings: Mapping[str, object] | None = None) -> LeakConfig:
    """The config of `mode` with `name=value` settings applied (text converted to each field's type)."""
    return configure("the leak classifier", LeakConfig(mode=mode), settings, fixed=("mode",))


@dataclass
class LeakTraining:
    mode: str
    folder: Path
    outcome: Outcome
    meta: dict
    model: results.ModelRecord

    def lines(self) -> list[str]:
        m, o = self.meta, self.outcome
        how = "stopped early" if o.stopped_early else "all epochs"
        resumed = f", resumed after epoch {o.resumed_from}" if o.resumed_from is not None else ""
        return [
            f"leak_{self.mode}: best file-level leak F1 {m['best_file_leak_f1']:.3f} at epoch {m['best_epoch']} "
            f"of {o.last_epoch} ({how}{resumed}); {m['train_segments']} training segments from "
            f"{m['train_files']} file(s), {m['validation_files']} validation file(s); "
            f"{o.items_per_second:.0f} segments/s",
            f"  model {self.model.model_id} (detector leak_{self.mode}), files in {self.folder}",
        ]


def workspace(project: Project, mode: str) -> Path:
    return project.artifacts / "classifiers" / f"leak_{mode}"


def train_leak(
    session,
    config: LeakConfig,
    progress: Progress | None = None,
    resume: bool = False,
) -> LeakTraining:
    """Train one mode in the session's project (its device and feature cache) and register the best model."""
    progress = progress or Progress()
    project, device = session.project, session.device
    mode, names = config.mode, classes_for(config.mode)
    segments = labelled_segments(project, mode, config.segments, session.cache, progress)
    train, validation = _split(segments, config)
    counts = np.bincount(train.classes, minlength=len(names))
    if (counts == 0).any():
        missing = [n for n, c in zip(names, counts, strict=True) if c == 0]
        raise EarmarkError(
            f"the {mode} leak classifier has no training segments of {', '.join(missing)}; label "
            "some stretches of that class" + (" (or train in binary mode)" if mode == "multiclass" else "")
        )
    mean = train.x.mean(axis=(0, 2), keepdims=True)
    std = train.x.std(axis=(0, 2), keepdims=True) + 1e-6
    inputs = torch.from_numpy(((train.x - mean) / std)[:, None])
    val_inputs = torch.from_numpy(((validation.x - mean) / std)[:, None])
    leak_index = names.index(LEAK)
    targets = {
        "class": torch.from_numpy(train.classes).long(),
        "leak": torch.from_numpy((train.classes == leak_index).astype(np.float32)),
    }
    weights = torch.tensor(len(train.classes) / (len(names) * counts), dtype=torch.float32, device=device)
    with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights
        torch.manual_seed(config.seed)
        model = LeakCNN(len(names), aux_head=mode == "multiclass")

    def loss(outputs, y):
        logits, aux = outputs
        value = torch.nn.functional.cross_entropy(logits.float(), y["class"], weight=weights)
        if aux is not None:
            value = value + config.aux_weight * torch.nn.functional.binary_cross_entropy_with_logits(
                aux.float(), y["leak"]
            )
        return value

    def evaluate(net) -> dict:
        from sklearn.metrics import f1_score

        probabilities, logits = leak_probabilities(net, val_inputs, leak_index, device)
        judged = judge_files(
            probabilities,
            validation.files,
            validation.long_ids,
            validation.truth,
            config.threshold,
            config.vote_fraction,
        )
        classes = torch.from_numpy(validation.classes).long()
        return {
            "val_loss": float(torch.nn.functional.cross_entropy(logits, classes)),
            "val_accuracy": float((logits.argmax(1) == classes).float().mean()),
            "segment_leak_f1": float(
                f1_score(validation.classes == leak_index, probabilities >= config.threshold, zero_division=0)
            ),
            **judged.as_dict(),
        }

    folder = workspace(project, mode)
    folder.mkdir(parents=True, exist_ok=True)
    signature = f"{data_signature(segments)}-{sorted(validation.truth)}-{config.segments}-{mode}-{config.seed}"
    trainer = Trainer(model, folder, config, device, loss, evaluate, "file_leak_f1", signature, f"leak {mode}: ")
    outcome = trainer.run(inputs, targets, progress, resume)
    load_best(model, folder)
    meta = _meta(config, names, outcome, train, validation, mean, std)
    write_text_atomic(folder / META, json.dumps(meta, indent=2))
    record = _register(session, config, model, meta, outcome.history)
    return LeakTraining(mode, folder, outcome, meta, record)


def train_and_score(
    session,
    modes: Sequence[str],
    settings: Mapping[str, object] | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    score: bool = True,
) -> tuple[list[LeakTraining], list[str]]:
    """Train each mode in turn ("both" is binary then multiclass), each in its own folder, then score every
    clip of the project with each new model (its lane and proposals). Returns the trainings and the lines
    that report them."""
    progress = progress or Progress()
    modes = list(MODES) if list(modes) == ["both"] else list(modes)
    trained = [
        train_leak(session, leak_config(mode, settings), progress.child(f"{mode} ({i + 1}/{len(modes)}): "), resume)
        for i, mode in enumerate(modes)
    ]
    lines = [line for t in trained for line in t.lines()]
    for t in trained if score else []:
        run = runs.score(session, t.model.detector, None, progress=progress.child(f"scoring {t.model.detector}: "))
        lines.append(
            f"  scored {run.scored} clip(s) with {t.model.detector}: "
            f"{sum(d.decision for d in run.detections)} judged LEAK"
        )
    return trained, lines


def _split(segments: SegmentSet, config: LeakConfig) -> tuple[SegmentSet, SegmentSet]:
    """Validation files: the labelled clips of the project's test split when there are leak and non-leak
    files on both sides; otherwise a grouped stratified share of the labelled files."""
    files = sorted(segments.truth)
    truth = [str(segments.truth[f]) for f in files]
    if len(set(truth)) < 2:
        raise EarmarkError(
            "file-level validation needs labelled files of both kinds, leak and not leak: "
            f"{len(files)} file(s) are labelled, {sum(segments.truth.values())} of them LEAK"
        )
    sides = ["test" if segments.splits.get(f) == "test" else "train" for f in files]
    kinds_held = {t for t, side in zip(truth, sides, strict=True) if side == "test"}
    kinds_kept = {t for t, side in zip(truth, sides, strict=True) if side == "train"}
    if len(kinds_held) == len(kinds_kept) == 2:
        split = split_by_value(files, sides, "test")
    else:
        split = grouped_split(files, truth, config.validation_fraction, config.seed)
    held = {files[i] for i in split.validation}
    return segments.subset(set(files) - held), segments.subset(held)


def _meta(
    config: LeakConfig,
    names,
    outcome: Outcome,
    train: SegmentSet,
    validation: SegmentSet,
    mean: np.ndarray,
    std: np.ndarray,
) -> dict:
    best = next(row for row in outcome.history if row["epoch"] == outcome.best_epoch)
    return {
        "mode": config.mode,
        "binary_mode": config.mode == "binary",
        "num_classes": len(names),
        "class_names": list(names),
        "original_class_names": list(classes_for("multiclass")),
        "leak_class_name": LEAK,
        "leak_idx": classes_for("multiclass").index(LEAK),
        "best_file_leak_f1": outcome.best_score,
        "best_epoch": outcome.best_epoch,
        "best_epoch_figures": best,
        "epochs_run": outcome.last_epoch,
        "stopped_early": outcome.stopped_early,
        "eval_method": EVAL_METHOD,
        "model_type": "LeakCNN",
        "trainer_cfg": asdict(config),
        "input_mean": mean.ravel().tolist(),
        "input_std": std.ravel().tolist(),
        "train_segments": int(len(train.classes)),
        "train_files": len(train.truth),
        "validation_segments": int(len(validation.classes)),
        "validation_files": len(validation.truth),
        "segments_per_second": outcome.items_per_second,
        "confusion": {"labels": ["NOLEAK", "LEAK"], "matrix": best["file_confusion"], "of": "validation files"},
    }


def _register(session, config: LeakConfig, model: LeakCNN, meta: dict, history: list[dict]) -> results.ModelRecord:
    """The best model as the project's detector `leak_<mode>` for every group (a new models row)."""
    detector = detector_for(config, model, meta, history)
    return runs.save_model(
        session.project,
        detector,
        results.ALL_GROUPS,
        {"best_file_leak_f1": meta["best_file_leak_f1"], "best_epoch": meta["best_epoch"]},
    )
