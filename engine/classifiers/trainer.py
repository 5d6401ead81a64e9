"""The epoch loop both classifiers share: shuffled mini-batches, evaluation after every epoch, the best
weights kept, early stopping, and checkpoints to resume from.

A training folder holds `best.safetensors` (the weights of the best epoch so far), `history.json` (one row of
figures per epoch: the training curves) and `checkpoints/`: `last.pt`, written after every epoch (weights,
optimiser, loss scaler, random-number state, the best so far and the history), and `epoch_NNN.pt`, the last
few epochs (older ones are removed). Checkpoints hold tensors and plain values only and are read with
`torch.load(weights_only=True)`. A cancelled run keeps the checkpoint of its last finished epoch, and
`resume=True` continues with the next epoch exactly as an uninterrupted run would have.

On CUDA the loop uses mixed precision, channels-last memory and, when asked, `torch.compile`.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.device import autocast
from engine.errors import EarmarkError
from engine.files import copy_atomic, save_safetensors_atomic, write_atomic, write_text_atomic
from engine.jobs import Progress

BEST = "best.safetensors"
HISTORY = "history.json"
LAST = Path("checkpoints") / "last.pt"

Outputs = tuple[torch.Tensor, torch.Tensor | None]
LossFunction = Callable[[Outputs, dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class LoopConfig:
    epochs: int = 200
    patience: int = 15
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    #: How many `epoch_NNN.pt` checkpoints are kept besides `last.pt`.
    keep_checkpoints: int = 3
    #: torch.compile the model (CUDA only; the first epoch then takes longer).
    compile: bool = False
    seed: int = 0

    def check(self, what: str) -> None:
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 2 or self.learning_rate <= 0:
            raise EarmarkError(f"{what}: epochs >= 1, patience >= 1, batch_size >= 2 and learning_rate > 0 "
                               "are required")


@dataclass
class Outcome:
    best_epoch: int
    best_score: float
    last_epoch: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)
    resumed_from: int | None = None
    seconds: float = 0.0
    items_per_second: float = 0.0


class Trainer:
    """Trains `model` on tensors; `evaluate(model)` returns the epoch's validation figures, among them
    `metric`, which selects the best epoch (higher is better). `signature` names the data and settings: a
    checkpoint made with another signature is not resumed."""

    def __init__(self, model: nn.Module, folder: str | Path, config: LoopConfig, device: torch.device,
                 loss: LossFunction, evaluate: Callable[[nn.Module], dict], metric: str, signature: str,
                 label: str = "") -> None:
        self.model = model.to(device)
        self.folder = Path(folder)
        self.config = config
        self.device = device
        self.loss = loss
        self.evaluate = evaluate
        self.metric = metric
        self.signature = signature
        self.label = label

    def run(self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], progress: Progress,
            resume: bool = False) -> Outcome:
        config, device = self.config, self.device
        cuda = device.type == "cuda"
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        forward = torch.compile(self.model) if config.compile and cuda else self.model
        optimiser = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        generator = torch.Generator().manual_seed(config.seed)
        state = {"epoch": 0, "best_score": float("-inf"), "best_epoch": 0, "bad_epochs": 0, "finished": False,
                 "history": []}
        resumed_from = None
        if resume:
            state = self._resume(optimiser, scaler, generator)
            resumed_from = state["epoch"]
        else:
            torch.manual_seed(config.seed)  # dropout draws from here; a resumed run restores it instead
        if not resume and self.has_checkpoint():
            for old in (self.folder / "checkpoints").glob("*.pt"):  # a fresh run starts with no old checkpoints
                old.unlink()
        (self.folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        count = len(inputs)
        batches = max(1, -(-count // config.batch_size))
        started, trained, last_report = time.perf_counter(), 0, 0.0
        epoch = state["epoch"]
        while not state["finished"] and epoch < config.epochs:
            epoch += 1
            self.model.train()
            order = torch.randperm(count, generator=generator)
            total_loss, correct = 0.0, 0
            for batch in range(batches):
                index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
                if len(index) < 2:  # batch norm needs two items
                    continue
                x = inputs[index].to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = {name: value[index].to(device, non_blocking=True) for name, value in targets.items()}
                optimiser.zero_grad(set_to_none=True)
                with autocast(device):
                    outputs = forward(x)
                    loss = self.loss(outputs, y)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                total_loss += float(loss.detach()) * len(index)
                correct += int((outputs[0].argmax(1) == y["class"]).sum())
                trained += len(index)
                now = time.perf_counter()
                if now - last_report > 0.2:
                    last_report = now
                    progress.update((epoch - 1) * batches + batch + 1, config.epochs * batches,
                                    f"{self.label}epoch {epoch}/{config.epochs}")
            self.model.eval()
            with torch.inference_mode():
                figures = self.evaluate(self.model)
            row = {"epoch": epoch, "train_loss": total_loss / max(count, 1), "train_accuracy": correct / max(count, 1),
                   **figures}
            state["history"].append(row)
            score = float(figures[self.metric])
            if score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
                self._save_best()
            else:
                state["bad_epochs"] += 1
            state["finished"] = state["bad_epochs"] >= config.patience or epoch >= config.epochs
            state["epoch"] = epoch
            self._checkpoint(state, optimiser, scaler, generator)
            progress.update(epoch * batches, config.epochs * batches,
                            f"{self.label}epoch {epoch}/{config.epochs}: {self.metric} {score:.3f} "
                            f"(best {state['best_score']:.3f} at {state['best_epoch']})")
        seconds = time.perf_counter() - started
        return Outcome(state["best_epoch"], state["best_score"], state["epoch"],
                       state["bad_epochs"] >= config.patience, state["history"], resumed_from, seconds,
                       trained / seconds if seconds > 0 else 0.0)

    # -- files -------------------------------------------------------------------------------------------------
    def _save_best(self) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_safetensors_atomic(self.folder / BEST, tensors)

    def _checkpoint(self, state: dict, optimiser, scaler, generator: torch.Generator) -> None:
        checkpoint = {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                      "optimiser": optimiser.state_dict(), "scaler": scaler.state_dict(),
                      "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                      "signature": self.signature, "config": json.dumps(asdict(self.config)),
                      **{k: v for k, v in state.items() if k != "history"},
                      "history": json.dumps(state["history"])}
        folder = self.folder / "checkpoints"
        numbered = folder / f"epoch_{state['epoch']:03d}.pt"
        write_atomic(numbered, lambda handle: torch.save(checkpoint, handle))
        copy_atomic(numbered, self.folder / LAST)  # serialised once, copied
        for old in sorted(folder.glob("epoch_*.pt"))[:-self.config.keep_checkpoints or None]:
            old.unlink()
        write_text_atomic(self.folder / HISTORY, json.dumps(state["history"], indent=1))

    def has_checkpoint(self) -> bool:
        return (self.folder / LAST).is_file()

    def finished(self) -> Outcome | None:
        """The outcome of a run that finished in this folder with this signature, read from its checkpoint;
        None when there is none."""
        if not self.has_checkpoint():
            return None
        checkpoint = self._read_checkpoint()
        if not checkpoint["finished"] or checkpoint.get("signature") != self.signature:
            return None
        return Outcome(int(checkpoint["best_epoch"]), float(checkpoint["best_score"]), int(checkpoint["epoch"]),
                       int(checkpoint["bad_epochs"]) >= self.config.patience, json.loads(checkpoint["history"]))

    def _read_checkpoint(self) -> dict:
        path = self.folder / LAST
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001  (torch's own message suggests unsafe loading: not repeated here)
            raise EarmarkError(f"cannot read the checkpoint {path}: the file is damaged or was not written by "
                               "Earmark; train again without --resume") from None

    def _resume(self, optimiser, scaler, generator: torch.Generator) -> dict:
        if not self.has_checkpoint():
            raise EarmarkError(f"nothing to resume: {self.folder / LAST} does not exist; train without --resume first")
        checkpoint = self._read_checkpoint()
        if checkpoint.get("signature") != self.signature:
            raise EarmarkError("the labels or the settings have changed since the checkpoint in "
                               f"{self.folder} was made; train afresh (without --resume)")
        if checkpoint["finished"]:
            raise EarmarkError(f"the training in {self.folder} already finished at epoch {checkpoint['epoch']} "
                               f"(best epoch {checkpoint['best_epoch']}); nothing to resume")
        self.model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        scaler.load_state_dict(checkpoint["scaler"])
        generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])
        return {"epoch": int(checkpoint["epoch"]), "best_score": float(checkpoint["best_score"]),
                "best_epoch": int(checkpoint["best_epoch"]), "bad_epochs": int(checkpoint["bad_epochs"]),
                "finished": False, "history": json.loads(checkpoint["history"])}


def load_best(model: nn.Module, folder: str | Path) -> nn.Module:
    from safetensors.torch import load_file

    from safetensors import SafetensorError

    path = Path(folder) / BEST
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise EarmarkError(f"the trained weights {path} are damaged or missing ({exc}); train again") from None
    model.load_state_dict(state)
    return model.eval()
