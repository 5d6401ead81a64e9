"""The one training loop: every model Earmark trains in epochs (the leak and sound classifiers, the
auto-encoder and metadata detectors) runs through `Trainer`: shuffled mini-batches, AdamW (or plain SGD:
`LoopConfig.optimiser`), mixed precision on CUDA, per-epoch curves, early stopping, checkpoints to resume
from, and branches of a model frozen for a whole run or for warm-up epochs.

A training folder holds `best.safetensors` (the weights of the best epoch so far), `history.json` (one row of
figures per epoch: the training curves; `history.csv` holds the same rows for a spreadsheet) and
`checkpoints/`: `last.pt`, written after every epoch (weights, optimiser, loss scaler, random-number state
(CUDA's too when it trains there), the best so far, the step count and the history), and
`epoch_NNN.pt`, the last few epochs (older ones are removed). A model whose epochs take milliseconds would
spend most of its time writing them: `LoopConfig.checkpoint_every_s` then spaces them out (a kill loses at most
that much training; the last epoch's checkpoint is always written). Checkpoints hold tensors and plain values
only and are read with `torch.load(weights_only=True)`. A cancelled run writes the checkpoint of its last
finished epoch, and `resume=True` continues with the next epoch exactly as an uninterrupted run would have.
Once a detector's fit has registered its model (`engine.detectors.runs.tidy_finished_training`), the
rolling `epoch_NNN.pt` and `best.safetensors` are removed: `last.pt` and the curves stay.

An epoch's row: `epoch`, `train_loss` (the optimised loss, the sum of its parts), `loss_<part>` for each part
of a loss given as a dict, `grad_norm_<branch>` (the L2 norm of that branch's gradients after backward, the
epoch's mean over its steps; 0 while the branch is frozen), `train_accuracy` (classification targets only),
`seconds`, and the validation figures `evaluate` returns. A model without a labelled validation set
(`evaluate=None`, one-class detectors) is judged by its negative training loss.

On CUDA the loop uses mixed precision, channels-last memory for image-like inputs and, when asked,
`torch.compile`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.csv_cells import cell
from engine.device import autocast
from engine.errors import EarmarkError
from engine.files import copy_atomic, safe_name, write_atomic
from engine.jobs import Progress

BEST = "best.safetensors"
HISTORY = "history.json"
#: The same rows as a table, for a spreadsheet (lists such as a confusion matrix as JSON in their cell).
HISTORY_CSV = "history.csv"
LAST = Path("checkpoints") / "last.pt"
OPTIMISERS = ("adamw", "sgd")

Outputs = object  # whatever the model returns: a tensor, or a tuple such as (logits, auxiliary logits)
LossFunction = Callable[[Outputs, dict[str, torch.Tensor]], "torch.Tensor | dict[str, torch.Tensor]"]


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
    #: The branches named in `Trainer(warm_up=...)` stay frozen for this many first epochs.
    warm_up_epochs: int = 0
    #: A checkpoint is written after an epoch once this many seconds have passed since the last one (0: after
    #: every epoch); the last epoch's always is, and a cancelled run writes its last finished epoch's.
    checkpoint_every_s: float = 0.0
    #: "adamw" (the default), or "sgd": plain gradient descent, no momentum (Reptile's outer step: with the
    #: gradient theta - theta', a step is theta += learning_rate * (theta' - theta)).
    optimiser: str = "adamw"

    def check(self, what: str) -> None:
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 2 or self.learning_rate <= 0:
            raise EarmarkError(
                f"{what}: epochs >= 1, patience >= 1, batch_size >= 2 and learning_rate > 0 are required"
            )
        if self.warm_up_epochs < 0:
            raise EarmarkError(f"{what}: warm_up_epochs must be 0 or more, not {self.warm_up_epochs}")
        if self.optimiser not in OPTIMISERS:
            raise EarmarkError(f"{what}: optimiser must be one of {', '.join(OPTIMISERS)}, not {self.optimiser!r}")


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
    #: Optimiser steps taken over the whole run, those before a resume included.
    steps: int = 0


def detector_workspace(artifacts: Path, detector: str, group: str) -> Path:
    """Where a project's detector trains for one group (checkpoints, `history.json`), so that `earmark fit
    --resume` finds the run a cancel or a kill interrupted."""
    return Path(artifacts) / "training" / safe_name(detector) / safe_name(group)


def has_checkpoints(folder: Path) -> bool:
    """Whether a training folder (or one of its subfolders: a detector training several networks) holds a
    checkpoint to resume from."""
    return Path(folder).is_dir() and any(path.parent.name == "checkpoints" for path in Path(folder).rglob("last.pt"))


class Trainer:
    """Trains `model` on tensors. `loss(outputs, targets)` returns a tensor or a dict of named parts (their
    sum is optimised). `evaluate(model)` returns the epoch's validation figures, among them `metric`, which
    selects the best epoch (higher is better); without `evaluate` the negative training loss does. `signature`
    names the data and settings: a checkpoint made with another signature is not resumed.

    `branches` names parts of `model` (`{"encoder": m.encoder, ...}`): their gradient norms are logged, those in
    `frozen` are frozen for the whole run and those in `warm_up` for the first `config.warm_up_epochs` epochs.
    A frozen branch gets no gradient, is left out of the optimiser step (no weight decay, no momentum) and
    runs in eval mode (its batch-norm statistics stay as they are): its state does not change at all.

    `min_batch` is the smallest batch trained on: 2 for a model with batch norm (which cannot normalise one
    item), 1 for one without. A shuffled epoch's last, smaller batch is skipped below it."""

    def __init__(
        self,
        model: nn.Module,
        folder: str | Path,
        config: LoopConfig,
        device: torch.device,
        loss: LossFunction,
        evaluate: Callable[[nn.Module], dict] | None,
        metric: str,
        signature: str,
        label: str = "",
        branches: Mapping[str, nn.Module] | None = None,
        frozen: Collection[str] = (),
        warm_up: Collection[str] = (),
        durable: bool = True,
        min_batch: int = 2,
    ) -> None:
        self.model = model.to(device)
        self.folder = Path(folder)
        self.config = config
        self.device = device
        self.loss = loss
        self.evaluate = evaluate
        self.metric = metric if evaluate is not None else "negative training loss"
        self.signature = signature
        self.label = label
        self.branches = dict(branches or {})
        unknown = sorted((set(frozen) | set(warm_up)) - set(self.branches))
        if unknown:
            known = ", ".join(self.branches) or "none"
            raise EarmarkError(
                f"{label.rstrip(': ') or 'training'}: no branch named {', '.join(unknown)}; branches: {known}"
            )
        self.frozen, self.warm_up = set(frozen), set(warm_up)
        #: fsync the files a resume reads (off for a folder removed after the run: nothing resumes there)
        self.durable = durable
        self.min_batch = max(1, min_batch)
        # what each parameter asked for before any freezing, restored when its branch thaws
        self._wants_grad = {id(p): p.requires_grad for p in self.model.parameters()}

    def frozen_in(self, epoch: int) -> set[str]:
        """The branches frozen during `epoch` (counted from 1)."""
        return self.frozen | (self.warm_up if epoch <= self.config.warm_up_epochs else set())

    def run(
        self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], progress: Progress, resume: bool = False
    ) -> Outcome:
        config, device = self.config, self.device
        cuda = device.type == "cuda"
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        forward = torch.compile(self.model) if config.compile and cuda else self.model
        optimiser = _optimiser(self.model, config, device)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        generator = torch.Generator().manual_seed(config.seed)
        state = {
            "epoch": 0,
            "best_score": float("-inf"),
            "best_epoch": 0,
            "bad_epochs": 0,
            "finished": False,
            "steps": 0,
            "history": [],
        }
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
        batches = max(1, -(-len(inputs) // config.batch_size))
        started, trained = time.perf_counter(), 0
        # An epoch's checkpoint (and new best weights) not written yet: `checkpoint_every_s` had not passed.
        pending: tuple[dict, dict | None] | None = None
        best: dict | None = None
        written = time.perf_counter()
        try:
            while not state["finished"] and state["epoch"] < config.epochs:
                epoch = state["epoch"] + 1
                row, seen = self._epoch(epoch, forward, optimiser, scaler, generator, inputs, targets, state, progress)
                trained += seen
                state["history"].append(row)
                score = float(row[self.metric]) if self.evaluate is not None else -row["train_loss"]
                if score > state["best_score"]:
                    state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
                    best = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                else:
                    state["bad_epochs"] += 1
                state["finished"] = state["bad_epochs"] >= config.patience or epoch >= config.epochs
                state["epoch"] = epoch
                checkpoint = self._checkpoint_of(state, optimiser, scaler, generator)
                if state["finished"] or time.perf_counter() - written >= config.checkpoint_every_s:
                    self._write(checkpoint, best)
                    pending, best, written = None, None, time.perf_counter()
                else:  # kept (copied: training goes on changing the tensors) for a cancel before the next write
                    pending = (_copied(checkpoint), best)
                if self.evaluate is not None:
                    said = f"{self.metric} {score:.3f} (best {state['best_score']:.3f} at {state['best_epoch']})"
                    message = f"{self.label}epoch {epoch}/{config.epochs}: {said}"
                else:
                    message = f"{self.label}epoch {epoch}/{config.epochs}, loss {row['train_loss']:.2f}"
                progress.update(epoch * batches, config.epochs * batches, message)
        except BaseException:  # a cancel, Ctrl+C or a failure: the run resumes after its last finished epoch
            if pending is not None:
                with contextlib.suppress(Exception):  # what stopped the run is the error to report
                    self._write(*pending)
            raise
        finally:
            self._freeze(set())
            self.model.eval()
        seconds = time.perf_counter() - started
        return Outcome(
            state["best_epoch"],
            state["best_score"],
            state["epoch"],
            state["bad_epochs"] >= config.patience,
            state["history"],
            resumed_from,
            seconds,
            trained / seconds if seconds > 0 else 0.0,
            state["steps"],
        )

    def _epoch(
        self,
        epoch: int,
        forward,
        optimiser,
        scaler,
        generator: torch.Generator,
        inputs: torch.Tensor,
        targets: dict[str, torch.Tensor],
        state: dict,
        progress: Progress,
    ) -> tuple[dict, int]:
        """Train one epoch and evaluate; returns its history row and the items it trained on."""
        config, device = self.config, self.device
        cuda = device.type == "cuda"
        started, last_report = time.perf_counter(), 0.0
        frozen_parameters = self._freeze(self.frozen_in(epoch))
        if not any(p.requires_grad for p in self.model.parameters()):
            frozen = ", ".join(sorted(self.frozen_in(epoch)))
            raise EarmarkError(
                f"{self._who()}: nothing would train in epoch {epoch}: every branch is frozen ({frozen}); "
                "freeze fewer branches, or no warm-up epochs while the other branch is frozen"
            )
        count = len(inputs)
        batches = max(1, -(-count // config.batch_size))
        order = torch.randperm(count, generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        parts: dict[str, float] = {}
        norms: dict[str, list[torch.Tensor]] = {name: [] for name in self.branches}
        for batch in range(batches):
            index = order[batch * config.batch_size : (batch + 1) * config.batch_size]
            if len(index) < self.min_batch:  # batch norm cannot normalise a batch of one
                continue
            x = inputs[index].to(device, non_blocking=True)
            if cuda and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = {name: value[index].to(device, non_blocking=True) for name, value in targets.items()}
            optimiser.zero_grad(set_to_none=True)
            with autocast(device):
                outputs = forward(x)
                value = self.loss(outputs, y)
            named = value if isinstance(value, dict) else {}
            loss = sum(named.values()) if named else value
            scaler.scale(loss).backward()
            for parameter in frozen_parameters:  # no gradient, so no step: AdamW skips parameters without one
                parameter.grad = None
            scaler.unscale_(optimiser)  # the norms below are the true gradients', not the scaled ones
            for name, branch in self.branches.items():
                norms[name].append(_gradient_norm(branch, device))
            if _stepped(optimiser, scaler):
                state["steps"] += 1
            total_loss += float(loss.detach()) * len(index)
            for part, part_value in named.items():
                parts[part] = parts.get(part, 0.0) + float(part_value.detach()) * len(index)
            if "class" in targets:
                correct += int((outputs[0].argmax(1) == y["class"]).sum())
            seen += len(index)
            now = time.perf_counter()
            if now - last_report > 0.2:
                last_report = now
                progress.update(
                    (epoch - 1) * batches + batch + 1,
                    config.epochs * batches,
                    f"{self.label}epoch {epoch}/{config.epochs}",
                )
        if seen == 0:  # no batch was large enough: an epoch of nothing would pass for a perfect fit
            raise EarmarkError(
                f"{self._who()}: too little training data: {count} training item(s), and a batch needs at least "
                f"{self.min_batch}, so no epoch trains anything; add more or longer normal training clips"
            )
        self.model.eval()
        figures = {}
        if self.evaluate is not None:
            with torch.inference_mode():
                figures = self.evaluate(self.model)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            **{f"loss_{part}": total / max(seen, 1) for part, total in parts.items()},
            **{f"grad_norm_{name}": _mean_finite(values) for name, values in norms.items()},
        }
        if "class" in targets:
            row["train_accuracy"] = correct / max(seen, 1)
        row["seconds"] = time.perf_counter() - started
        row.update(figures)
        return row, seen

    def _who(self) -> str:
        """What is training, for a message: the label without its colon."""
        return self.label.rstrip(": ") or "training"

    def _freeze(self, names: set[str]) -> list[nn.Parameter]:
        """Put the model in training mode with the named branches frozen (no gradient, eval mode) and the rest
        as they were; returns the frozen parameters."""
        self.model.train()
        frozen_ids = set()
        for name in names:
            self.branches[name].eval()
            frozen_ids.update(id(p) for p in self.branches[name].parameters())
        frozen = []
        for parameter in self.model.parameters():
            if id(parameter) in frozen_ids:
                parameter.requires_grad_(False)
                frozen.append(parameter)
            else:
                parameter.requires_grad_(self._wants_grad.get(id(parameter), True))
        return frozen

    # -- files -------------------------------------------------------------------------------------------------
    def _checkpoint_of(self, state: dict, optimiser, scaler, generator: torch.Generator) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimiser": optimiser.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            # dropout on the GPU draws from CUDA's generators: kept too, so a resume there is exact as well
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if self.device.type == "cuda" else {}),
            "signature": self.signature,
            "config": json.dumps(asdict(self.config)),
            **{k: v for k, v in state.items() if k != "history"},
            "history": json.dumps(state["history"]),
        }

    def _write(self, checkpoint: dict, best: dict[str, torch.Tensor] | None) -> None:
        """The best weights (when they changed), then the checkpoint, then the curves."""
        from safetensors.torch import save

        if best is not None:
            tensors = {k: v.contiguous() for k, v in best.items()}
            write_atomic(self.folder / BEST, lambda handle: handle.write(save(tensors)), self.durable)
        folder = self.folder / "checkpoints"
        numbered = folder / f"epoch_{checkpoint['epoch']:03d}.pt"
        # Serialised once and copied; only last.pt, what a resume reads, is flushed to disk (an fsync costs
        # more than a small model's epoch), and history.json is written again from it at the next checkpoint.
        write_atomic(numbered, lambda handle: torch.save(checkpoint, handle), durable=False)
        copy_atomic(numbered, self.folder / LAST, self.durable)
        for old in sorted(folder.glob("epoch_*.pt"))[: -self.config.keep_checkpoints or None]:
            old.unlink()
        rows = json.loads(checkpoint["history"])
        for name, text in ((HISTORY, json.dumps(rows, indent=1)), (HISTORY_CSV, history_csv(rows))):
            write_atomic(self.folder / name, lambda handle, text=text: handle.write(text.encode()), durable=False)

    def has_checkpoint(self) -> bool:
        return (self.folder / LAST).is_file()

    def fit(
        self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], progress: Progress, resume: bool = False
    ) -> Outcome:
        """A detector's training: a fresh run; with `resume`, the run this folder holds continued, or, when it
        had finished (trained to the end, then killed), its outcome taken with its last weights. A finished run
        of other clips or settings (in a multi-group `fit --resume`, a group whose clips changed since) trains
        afresh, and `progress` says so; an unfinished one is refused (`run`)."""
        if resume and self.has_checkpoint():
            checkpoint = self._read_checkpoint()
            if checkpoint.get("finished"):
                if checkpoint.get("signature") == self.signature:
                    return self._outcome_of(checkpoint, restore=True)
                progress.problem(
                    f"{self._who()}: the finished training in {self.folder} was of other clips or settings; "
                    "trained afresh"
                )
                resume = False
        return self.run(inputs, targets, progress, resume=resume and self.has_checkpoint())

    def finished(self, restore: bool = False) -> Outcome | None:
        """The outcome of a run that finished in this folder with this signature, read from its checkpoint
        (with `restore`, its last weights are loaded into the model); None when there is none."""
        if not self.has_checkpoint():
            return None
        checkpoint = self._read_checkpoint()
        if not checkpoint.get("finished") or checkpoint.get("signature") != self.signature:
            return None
        return self._outcome_of(checkpoint, restore)

    def _outcome_of(self, checkpoint: dict, restore: bool) -> Outcome:
        try:
            if restore:
                self.model.load_state_dict(checkpoint["model"])
                self.model.eval()
            return Outcome(
                int(checkpoint["best_epoch"]),
                float(checkpoint["best_score"]),
                int(checkpoint["epoch"]),
                int(checkpoint["bad_epochs"]) >= self.config.patience,
                json.loads(checkpoint["history"]),
                steps=_steps(checkpoint),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise self._damaged(exc) from None

    def _damaged(self, reason: object = "") -> EarmarkError:
        said = f" ({reason})" if reason else ""
        return EarmarkError(
            f"cannot read the checkpoint {self.folder / LAST}: the file is damaged or was not "
            f"written by Earmark{said}; train again without --resume"
        )

    def _read_checkpoint(self) -> dict:
        path = self.folder / LAST
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001  (torch's own message suggests unsafe loading: not repeated here)
            raise self._damaged() from None
        if not isinstance(checkpoint, dict):
            raise self._damaged("not a checkpoint")
        return checkpoint

    def _resume(self, optimiser, scaler, generator: torch.Generator) -> dict:
        if not self.has_checkpoint():
            raise EarmarkError(f"nothing to resume: {self.folder / LAST} does not exist; train without --resume first")
        checkpoint = self._read_checkpoint()
        if checkpoint.get("signature") != self.signature:
            raise EarmarkError(
                "the labels, the clips or the settings have changed since the checkpoint in "
                f"{self.folder} was made; train afresh (without --resume)"
            )
        try:
            if checkpoint["finished"]:
                raise EarmarkError(
                    f"the training in {self.folder} already finished at epoch {checkpoint['epoch']} "
                    f"(best epoch {checkpoint['best_epoch']}); nothing to resume"
                )
            self.model.load_state_dict(checkpoint["model"])
            optimiser.load_state_dict(checkpoint["optimiser"])
            scaler.load_state_dict(checkpoint["scaler"])
            generator.set_state(checkpoint["generator"])
            torch.set_rng_state(checkpoint["torch_rng"])
            if self.device.type == "cuda" and "cuda_rng" in checkpoint:
                torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
            return {
                "epoch": int(checkpoint["epoch"]),
                "best_score": float(checkpoint["best_score"]),
                "best_epoch": int(checkpoint["best_epoch"]),
                "bad_epochs": int(checkpoint["bad_epochs"]),
                "finished": False,
                "steps": _steps(checkpoint),
                "history": json.loads(checkpoint["history"]),
            }
        except EarmarkError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise self._damaged(exc) from None


def history_csv(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """Epoch rows as CSV text: `columns` (by default every key, in the order they first appear), one line
    per row; a value a row lacks is an empty cell, a list or dict is JSON."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [cell(json.dumps(v) if isinstance(v, (list, dict)) else v) for v in (row.get(column) for column in columns)]
        )
    return table.getvalue()


def _optimiser(model: nn.Module, config: LoopConfig, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser `config.optimiser` names, on every parameter of `model` (a frozen one gets no gradient,
    so no step)."""
    if config.optimiser not in OPTIMISERS:
        raise EarmarkError(f"optimiser must be one of {', '.join(OPTIMISERS)}, not {config.optimiser!r}")
    # The fused kernels: one call for every parameter instead of a Python loop over them.
    fused = device.type in ("cpu", "cuda")
    if config.optimiser == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused
        )
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused)


def _copied(value):
    """A copy of a checkpoint: its tensors cloned, its containers rebuilt (far quicker than deepcopy)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def _stepped(optimiser: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """Step the optimiser through the loss scaler; whether it really stepped. With mixed precision the scaler
    skips a step whose gradients hold inf or NaN (common in the first steps) and lowers its scale: such a step
    is not counted."""
    before = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimiser)
    scaler.update()
    return before is None or scaler.get_scale() >= before


def _gradient_norm(branch: nn.Module, device: torch.device) -> torch.Tensor:
    """The L2 norm of all of a branch's gradients (0 when it has none: frozen), left on the device."""
    grads = [p.grad.detach() for p in branch.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def _mean_finite(values: list[torch.Tensor]) -> float:
    """The mean of an epoch's gradient norms, without the steps mixed precision skipped (inf or NaN)."""
    if not values:
        return 0.0
    stacked = torch.stack(values).float().cpu()
    finite = stacked[torch.isfinite(stacked)]
    return float(finite.mean()) if len(finite) else float("nan")


def _steps(checkpoint: dict) -> int:
    """The optimiser steps a checkpoint's run had taken (from its optimiser's state for a checkpoint written
    before the count was kept)."""
    if "steps" in checkpoint:
        return int(checkpoint["steps"])
    states = checkpoint.get("optimiser", {}).get("state", {})
    return max((int(s["step"]) for s in states.values() if "step" in s), default=0)


def load_best(model: nn.Module, folder: str | Path) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / BEST
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise EarmarkError(f"the trained weights {path} are damaged or missing ({exc}); train again") from None
    model.load_state_dict(state)
    return model.eval()
