"""Training the sound classifier: a spectrogram CNN (or a residual CNN with SE or CBAM attention) over every
clip that has a class, with augmented variants grouped with their source clip, a split audited for leakage,
several seeds, and accuracy, macro F1, per-class recall and the confusion matrix on the validation clips.

The split: ESC-50's folds when the clips have them (`validation_fold`), otherwise whole groups (the clip, or
an attribute such as EmoDB's speaker with `group_by=speaker`) stratified by class. Variants are only trained
on; validation uses the original clips. Each seed trains in `artifacts/classifiers/sound/seed_<n>/` (best
weights, `history.json` with the per-epoch curves, `metrics.json`, checkpoints) and `summary.json` gives the
mean and spread over the seeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.audio.features import LogMelConfig
from engine.classifiers.models import sound_model
from engine.classifiers.sound_data import VARIANTS, ClipImage
from engine.classifiers.splits import Split, audit, grouped_split, split_by_value
from engine.detectors.registry import configure
from engine.errors import EarmarkError
from engine.files import write_text_atomic
from engine.jobs import Progress
from engine.store.project import Project
from engine.training import LoopConfig, Outcome, Trainer

SUMMARY = "summary.json"


@dataclass
class SoundConfig(LoopConfig):
    epochs: int = 30
    patience: int = 10
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 1e-2
    architecture: str = "resnet"
    attention: str = "none"
    width: int = 16
    augment: tuple[str, ...] = VARIANTS
    seeds: tuple[int, ...] = (0, 1, 2)
    validation_fold: str = "1"
    validation_fraction: float = 0.2
    group_by: str = "clip"
    clip_seconds: float = 5.0
    sample_rate: int = 16000
    n_mels: int = 64
    hop_length: int = 256

    def __post_init__(self) -> None:
        self.check("sound classifier")
        if self.warm_up_epochs:
            raise EarmarkError(
                "sound classifier: warm_up_epochs is for models with an encoder to keep frozen; this one "
                "trains as a whole"
            )
        if self.architecture not in ("cnn", "resnet") or self.attention not in ("none", "se", "cbam"):
            raise EarmarkError("sound classifier: architecture is cnn or resnet, attention none, se or cbam")
        unknown = [v for v in self.augment if v and v not in VARIANTS]
        if unknown:
            raise EarmarkError(
                f"sound classifier: unknown augmentation {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
            )
        if not self.seeds:
            raise EarmarkError("sound classifier: give at least one seed")

    @property
    def features(self) -> LogMelConfig:
        return LogMelConfig(sample_rate=self.sample_rate, n_fft=1024, hop_length=self.hop_length, n_mels=self.n_mels)


def sound_config(settings: Mapping[str, object] | None = None) -> SoundConfig:
    return configure("the sound classifier", SoundConfig(), settings)


@dataclass
class SoundTraining:
    folder: Path
    summary: dict
    outcomes: list[Outcome] = field(default_factory=list)

    def lines(self) -> list[str]:
        s = self.summary
        out = [
            f"sound classifier ({s['model']}): accuracy {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}, "
            f"macro F1 {s['macro_f1_mean']:.3f} ± {s['macro_f1_std']:.3f} over {len(s['seeds'])} seed(s); "
            f"{s['classes']} classes, {s['train_items']} training items ({s['train_clips']} clips with their "
            f"variants), {s['validation_clips']} validation clips; split {s['split']}, leakage audit passed"
        ]
        out += [
            f"  seed {r['seed']}: accuracy {r['accuracy']:.3f}, macro F1 {r['macro_f1']:.3f}, best epoch "
            f"{r['best_epoch']}"
            for r in s["runs"]
        ]
        out.append(f"  files in {self.folder}")
        return out


def workspace(project: Project) -> Path:
    return project.artifacts / "classifiers" / "sound"


def train_sound(
    session,
    config: SoundConfig,
    progress: Progress | None = None,
    resume: bool = False,
) -> SoundTraining:
    """Train every seed in the session's project (its device and feature cache); with `resume`, seeds that
    finished are taken as they are and an interrupted one continues."""
    progress = progress or Progress()
    project, device, cache = session.project, session.device, session.cache
    clips = [c for c in project.clips() if c.attributes.get("class")]
    if not clips:
        raise EarmarkError(
            "no clip has a class to learn: import a data set with classes (ESC-50, EmoDB, or "
            "folders named after the classes)"
        )
    names = sorted({c.attributes["class"] for c in clips})
    if len(names) < 2:
        raise EarmarkError(f"the sound classifier needs two classes or more; the clips only have {names[0]!r}")
    variants = ("original", *[v for v in config.augment if v])
    images = {}
    for index, variant in enumerate(variants):
        step = progress.child(f"features {variant} ({index + 1}/{len(variants)}): ")
        images[variant] = cache.features(clips, ClipImage(config.features, variant, config.clip_seconds), step)
    clips = [c for c in clips if all(c.clip_id in images[v] for v in variants)]
    groups = [c.clip_id if config.group_by == "clip" else c.attributes.get(config.group_by, c.clip_id) for c in clips]
    labels = [c.attributes["class"] for c in clips]
    folds = [c.attributes.get("fold") for c in clips]
    folder = workspace(project)
    runs, outcomes = [], []
    for number, seed in enumerate(config.seeds):
        if any(folds) and config.validation_fold in folds:
            split, how = (
                split_by_value(groups, folds, config.validation_fold),
                f"fold {config.validation_fold} held out",
            )
        else:
            split = grouped_split(groups, labels, config.validation_fraction, seed)
            how = f"{config.validation_fraction:.0%} of the {config.group_by} groups held out, stratified"
        items = _items(split, variants, groups)  # every variant of a training clip, the originals of validation
        audit(Split([i for i, _ in items["train"]], [i for i, _ in items["validation"]]), groups)
        x, y = _stack(items["train"], clips, images, names, labels)
        vx, vy = _stack(items["validation"], clips, images, names, labels)
        mean, std = float(x.mean()), float(x.std()) + 1e-6
        x, vx = (x - mean) / std, (vx - mean) / std
        run_config = dataclasses.replace(config, seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = sound_model(config.architecture, len(names), config.attention, config.width)

        def evaluate(net, vx=vx, vy=vy) -> dict:
            logits = _logits(net, vx, device)
            return {
                "val_loss": float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(vy))),
                **_figures(vy, logits.argmax(1).numpy(), len(names)),
            }

        seed_folder = folder / f"seed_{seed}"
        signature = hashlib.sha1(
            json.dumps([names, sorted(groups[i] for i, _ in items["validation"]), asdict(config)], default=str).encode()
        ).hexdigest()[:16]
        trainer = Trainer(
            model,
            seed_folder,
            run_config,
            device,
            lambda outputs, t: torch.nn.functional.cross_entropy(outputs[0].float(), t["class"]),
            evaluate,
            "macro_f1",
            signature,
            f"seed {seed} ({number + 1}/{len(config.seeds)}): ",
        )
        outcome = (trainer.finished() if resume else None) or trainer.run(
            torch.from_numpy(x), {"class": torch.from_numpy(y)}, progress, resume and trainer.has_checkpoint()
        )
        best = next(row for row in outcome.history if row["epoch"] == outcome.best_epoch)
        figures = {
            "seed": seed,
            "best_epoch": outcome.best_epoch,
            "epochs_run": outcome.last_epoch,
            **{k: v for k, v in best.items() if k not in ("epoch", "train_loss", "train_accuracy")},
        }
        write_text_atomic(seed_folder / "metrics.json", json.dumps(figures, indent=1))
        runs.append(figures)
        outcomes.append(outcome)
    summary = _summary(config, names, runs, how, items, groups, outcomes)
    write_text_atomic(folder / SUMMARY, json.dumps(summary, indent=1))
    return SoundTraining(folder, summary, outcomes)


def _items(split: Split, variants, groups) -> dict[str, list[tuple[int, str]]]:
    return {
        "train": [(i, v) for i in split.train for v in variants],
        "validation": [(i, "original") for i in split.validation],
    }


def _stack(items, clips, images, names, labels) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([images[v][clips[i].clip_id] for i, v in items])[:, None].astype(np.float32)
    y = np.array([names.index(labels[i]) for i, _ in items], dtype=np.int64)
    return x, y


def _logits(net, x: np.ndarray, device: torch.device, batch: int = 64) -> torch.Tensor:
    net.eval()
    with torch.inference_mode():
        return torch.cat(
            [net(torch.from_numpy(x[s : s + batch]).to(device))[0].float().cpu() for s in range(0, len(x), batch)]
        )


def _figures(truth: np.ndarray, predicted: np.ndarray, n: int) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    labels = list(range(n))
    figures = {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
    }
    figures["per_class_recall"] = recall_score(truth, predicted, labels=labels, average=None, zero_division=0).tolist()
    figures["confusion"] = confusion_matrix(truth, predicted, labels=labels).tolist()
    return figures


def _summary(config: SoundConfig, names, runs, how, items, groups, outcomes) -> dict:
    accuracy = np.array([r["accuracy"] for r in runs])
    f1 = np.array([r["macro_f1"] for r in runs])
    model = config.architecture + (f"+{config.attention}" if config.attention != "none" else "")
    return {
        "model": model,
        "classes": len(names),
        "class_names": names,
        "seeds": list(config.seeds),
        "runs": runs,
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std": float(accuracy.std()),
        "macro_f1_mean": float(f1.mean()),
        "macro_f1_std": float(f1.std()),
        "split": how,
        "train_items": len(items["train"]),
        "train_clips": len({groups[i] for i, _ in items["train"]}),
        "validation_clips": len(items["validation"]),
        "leakage_audit": "passed",
        "items_per_second": float(np.mean([o.items_per_second for o in outcomes if o.items_per_second] or [0])),
        "config": asdict(config),
    }
