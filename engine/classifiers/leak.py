"""Training the leak detector from a project's labelled regions, in binary (NOLEAK / LEAK) or 5-class mode
(LEAK, NORMAL, QUIET, RANDOM, MECHANICAL, with an auxiliary leak-vs-rest head: loss = class-weighted cross
entropy + 0.5 x binary cross entropy), with model selection on file-level leak F1. The binary mode weights
its two classes too: a survey holds far fewer leak files than others, and unweighted it learns "never LEAK".

Each mode trains in its own folder, `artifacts/classifiers/leak_<mode>/` (best weights, `model_meta.json`,
`history.json`, checkpoints to resume), and the finished model is registered in the project as the detector
`leak_<mode>` for every group, so it scores clips (a leak-probability lane and proposals) like any other.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache
from engine.classifiers.leak_data import (LEAK, MODES, SegmentSet, SegmentSettings, classes_for, data_signature,
                                          labelled_segments)
from engine.classifiers.models import LeakCNN
from engine.classifiers.splits import grouped_split, split_by_value
from engine.classifiers.trainer import HISTORY, LoopConfig, Outcome, Trainer, load_best
from engine.classifiers.voting import EVAL_METHOD, judge_files
from engine.detectors.registry import _convert
from engine.device import pick_device
from engine.errors import EarmarkError
from engine.files import write_text_atomic
from engine.jobs import Progress
from engine.store import results
from engine.store.project import Project

META = "model_meta.json"


@dataclass
class LeakConfig(LoopConfig):
    mode: str = "binary"
    batch_size: int = 512
    segment_frames: int = 8
    long_segment_s: float = 2.0
    #: A long segment passes when its mean leak probability reaches this; a file is LEAK when at least
    #: `vote_fraction` of its long segments pass.
    threshold: float = 0.5
    vote_fraction: float = 0.5
    aux_weight: float = 0.5
    #: Share of labelled files held out for model selection when the project's splits do not give one.
    validation_fraction: float = 0.25

    def __post_init__(self) -> None:
        classes_for(self.mode)
        self.check("leak classifier")
        if self.segment_frames < 1 or self.long_segment_s <= 0 or not 0 < self.threshold < 1:
            raise EarmarkError("leak classifier: segment_frames >= 1, long_segment_s > 0 and 0 < threshold < 1 "
                               "are required")

    @property
    def segments(self) -> SegmentSettings:
        return SegmentSettings(segment_frames=self.segment_frames, long_segment_s=self.long_segment_s)


def leak_config(mode: str, settings: Mapping[str, object] | None = None) -> LeakConfig:
    """The config of `mode` with `name=value` settings applied (text converted to each field's type)."""
    base = LeakConfig(mode=mode)
    fields = {f.name: f for f in dataclasses.fields(base)}
    values = {}
    for name, value in (settings or {}).items():
        if name not in fields or name == "mode":
            raise EarmarkError(f"the leak classifier has no setting {name!r}; its settings are: "
                               f"{', '.join(n for n in fields if n != 'mode')}")
        values[name] = _convert("leak classifier", name, value, getattr(base, name))
    return dataclasses.replace(base, **values)


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
        return [f"leak_{self.mode}: best file-level leak F1 {m['best_file_leak_f1']:.3f} at epoch {m['best_epoch']} "
                f"of {o.last_epoch} ({how}{resumed}); {m['train_segments']} training segments from "
                f"{m['train_files']} file(s), {m['validation_files']} validation file(s); "
                f"{o.items_per_second:.0f} segments/s",
                f"  model {self.model.model_id} (detector leak_{self.mode}), files in {self.folder}"]


def workspace(project: Project, mode: str) -> Path:
    return project.artifacts / "classifiers" / f"leak_{mode}"


def train_leak(project: Project, config: LeakConfig, progress: Progress | None = None, resume: bool = False,
               cache: FeatureCache | None = None, device: torch.device | None = None) -> LeakTraining:
    progress = progress or Progress()
    device = device or pick_device()
    cache = cache or FeatureCache(project.artifacts / "features", device)
    mode, names = config.mode, classes_for(config.mode)
    segments = labelled_segments(project, mode, config.segments, cache, progress)
    train, validation = _split(segments, config)
    counts = np.bincount(train.classes, minlength=len(names))
    if (counts == 0).any():
        missing = [n for n, c in zip(names, counts, strict=True) if c == 0]
        raise EarmarkError(f"the {mode} leak classifier has no training segments of {', '.join(missing)}; label "
                           "some stretches of that class" + (" (or train in binary mode)" if mode == "multiclass"
                                                              else ""))
    mean = train.x.mean(axis=(0, 2), keepdims=True)
    std = train.x.std(axis=(0, 2), keepdims=True) + 1e-6
    inputs = torch.from_numpy(((train.x - mean) / std)[:, None])
    val_inputs = torch.from_numpy(((validation.x - mean) / std)[:, None])
    leak_index = names.index(LEAK)
    targets = {"class": torch.from_numpy(train.classes).long(),
               "leak": torch.from_numpy((train.classes == leak_index).astype(np.float32))}
    weights = torch.tensor(len(train.classes) / (len(names) * counts), dtype=torch.float32, device=device)
    with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights
        torch.manual_seed(config.seed)
        model = LeakCNN(len(names), aux_head=mode == "multiclass")

    def loss(outputs, y):
        logits, aux = outputs
        value = torch.nn.functional.cross_entropy(logits.float(), y["class"], weight=weights)
        if aux is not None:
            value = value + config.aux_weight * torch.nn.functional.binary_cross_entropy_with_logits(
                aux.float(), y["leak"])
        return value

    def evaluate(net) -> dict:
        probabilities, logits = leak_probabilities(net, val_inputs, leak_index, device)
        judged = judge_files(probabilities, validation.files, validation.long_ids, validation.truth,
                             config.threshold, config.vote_fraction)
        classes = torch.from_numpy(validation.classes).long()
        return {"val_loss": float(torch.nn.functional.cross_entropy(logits, classes)),
                "val_accuracy": float((logits.argmax(1) == classes).float().mean()),
                "segment_leak_f1": _f1(probabilities >= config.threshold, validation.classes == leak_index),
                **judged.as_dict()}

    folder = workspace(project, mode)
    folder.mkdir(parents=True, exist_ok=True)
    signature = f"{data_signature(segments)}-{sorted(validation.truth)}-{config.segments}-{mode}-{config.seed}"
    trainer = Trainer(model, folder, config, device, loss, evaluate, "file_leak_f1", signature, f"leak {mode}: ")
    outcome = trainer.run(inputs, targets, progress, resume)
    load_best(model, folder)
    best = next(row for row in outcome.history if row["epoch"] == outcome.best_epoch)
    meta = _meta(config, names, outcome, best, train, validation, mean, std)
    meta["confusion"] = _file_confusion(model, val_inputs, validation, leak_index, config, device)
    write_text_atomic(folder / META, json.dumps(meta, indent=2))
    record = _register(project, config, model, meta, folder)
    return LeakTraining(mode, folder, outcome, meta, record)


def train_modes(project: Project, modes: Sequence[str], settings: Mapping[str, object] | None = None,
                progress: Progress | None = None, resume: bool = False, cache: FeatureCache | None = None,
                device: torch.device | None = None) -> list[LeakTraining]:
    """Train each mode in turn ("both" is binary then multiclass), each in its own folder."""
    progress = progress or Progress()
    modes = list(MODES) if list(modes) == ["both"] else list(modes)
    return [train_leak(project, leak_config(mode, settings), progress.child(f"{mode} ({i + 1}/{len(modes)}): "),
                       resume, cache, device) for i, mode in enumerate(modes)]


def leak_probabilities(net: torch.nn.Module, inputs: torch.Tensor, leak_index: int, device: torch.device,
                       batch: int = 4096) -> tuple[np.ndarray, torch.Tensor]:
    """(leak probability per segment, class logits). With an auxiliary head the two heads' leak
    probabilities are averaged."""
    probabilities, all_logits = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch):
            logits, aux = net(inputs[start:start + batch].to(device))
            logits = logits.float()
            p = torch.softmax(logits, 1)[:, leak_index]
            if aux is not None:
                p = (p + torch.sigmoid(aux.float())) / 2
            probabilities.append(p.cpu())
            all_logits.append(logits.cpu())
    if not probabilities:
        return np.zeros(0), torch.zeros(0, 1)
    return torch.cat(probabilities).numpy(), torch.cat(all_logits)


def _split(segments: SegmentSet, config: LeakConfig) -> tuple[SegmentSet, SegmentSet]:
    """Validation files: the labelled clips of the project's test split when there are leak and non-leak
    files on both sides; otherwise a grouped stratified share of the labelled files."""
    files = sorted(segments.truth)
    truth = [str(segments.truth[f]) for f in files]
    if len(files) < 2 or len(set(truth)) < 2:
        raise EarmarkError("file-level validation needs labelled files of both kinds, leak and not leak: "
                           f"{len(files)} file(s) are labelled, {sum(segments.truth.values())} of them LEAK")
    splits = [segments.splits.get(f) for f in files]
    sides = {value: {t for t, s in zip(truth, splits, strict=True) if (s == "test") == value} for value in (True, False)}
    if all(len(sides[v]) == 2 for v in sides):
        split = split_by_value(files, ["test" if s == "test" else "train" for s in splits], "test")
    else:
        split = grouped_split(files, truth, config.validation_fraction, config.seed)
    held = {files[i] for i in split.validation}
    return segments.subset(set(files) - held), segments.subset(held)


def _f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    tp = float(np.sum(predicted & truth))
    denominator = float(np.sum(predicted) + np.sum(truth))
    return 2 * tp / denominator if denominator else 0.0


def _file_confusion(model, inputs, validation: SegmentSet, leak_index: int, config: LeakConfig, device) -> dict:
    probabilities, _ = leak_probabilities(model.to(device), inputs, leak_index, device)
    judged = judge_files(probabilities, validation.files, validation.long_ids, validation.truth, config.threshold,
                         config.vote_fraction)
    matrix = [[0, 0], [0, 0]]  # rows: truth NOLEAK, LEAK; columns: decision
    for file, decided in judged.decisions.items():
        matrix[int(validation.truth[file])][int(decided)] += 1
    return {"labels": ["NOLEAK", "LEAK"], "matrix": matrix, "of": "validation files"}


def _meta(config: LeakConfig, names, outcome: Outcome, best: dict, train: SegmentSet, validation: SegmentSet,
          mean: np.ndarray, std: np.ndarray) -> dict:
    return {"mode": config.mode, "binary_mode": config.mode == "binary", "num_classes": len(names),
            "class_names": list(names), "original_class_names": list(classes_for("multiclass")),
            "leak_class_name": LEAK, "leak_idx": classes_for("multiclass").index(LEAK),
            "best_file_leak_f1": outcome.best_score, "best_epoch": outcome.best_epoch,
            "best_epoch_figures": best, "epochs_run": outcome.last_epoch, "stopped_early": outcome.stopped_early,
            "eval_method": EVAL_METHOD, "model_type": "LeakCNN", "trainer_cfg": asdict(config),
            "input_mean": mean.ravel().tolist(), "input_std": std.ravel().tolist(),
            "train_segments": int(len(train.classes)), "train_files": len(train.truth),
            "validation_segments": int(len(validation.classes)), "validation_files": len(validation.truth),
            "segments_per_second": outcome.items_per_second, "history_file": HISTORY}


def _register(project: Project, config: LeakConfig, model: LeakCNN, meta: dict, folder: Path) -> results.ModelRecord:
    """The best model as the project's detector `leak_<mode>` for every group (a new models row)."""
    from engine.classifiers.leak_detector import detector_for

    detector = detector_for(config, model, meta)
    model_id, target = results.add_model(project, detector.key, results.ALL_GROUPS, asdict(detector.config),
                                         detector.threshold, {"best_file_leak_f1": meta["best_file_leak_f1"],
                                                              "best_epoch": meta["best_epoch"]})
    try:
        detector.save(target)
        write_text_atomic(target / META, json.dumps(meta, indent=2))
        write_text_atomic(target / HISTORY, (folder / HISTORY).read_text())
    except BaseException:
        results.remove_model(project, model_id)
        raise
    return next(m for m in results.models(project, detector.key) if m.model_id == model_id)
