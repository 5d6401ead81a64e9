"""The one training loop, as a model's author relies on it: branches frozen for a run or for warm-up epochs
keep every weight, the loss parts and per-branch gradient norms are in `history.json`, an interrupted run
resumes at the next epoch with the optimiser steps and weights of an uninterrupted one, and a damaged
checkpoint says so."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from engine.errors import EarmarkError
from engine.jobs import Cancelled, Progress, RecordingProgress
from engine.training import LAST, LoopConfig, Trainer, detector_workspace
from tests.helpers import StopAfter

CPU = torch.device("cpu")


class TinyAE(nn.Module):
    """An auto-encoder in two branches, with batch norm (running statistics are state too)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.ReLU())
        self.decoder = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


def data() -> torch.Tensor:
    return torch.randn(40, 8, generator=torch.Generator().manual_seed(1))


def two_parts(outputs, targets) -> dict[str, torch.Tensor]:
    reconstruction, z = outputs
    return {"reconstruction": nn.functional.mse_loss(reconstruction, targets["input"]), "latent": 0.1 * z.pow(2).mean()}


def trainer(folder, epochs=3, **options) -> Trainer:
    config = LoopConfig(
        epochs=epochs,
        patience=100,
        batch_size=16,
        weight_decay=0.1,
        keep_checkpoints=10,
        warm_up_epochs=options.pop("warm_up_epochs", 0),
    )
    model = TinyAE()
    return Trainer(
        model,
        folder,
        config,
        CPU,
        two_parts,
        None,
        "",
        "sig",
        "tiny: ",
        branches={"encoder": model.encoder, "decoder": model.decoder},
        **options,
    )


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def saved_branch(folder, epoch: int, branch: str) -> dict[str, torch.Tensor]:
    state = torch.load(folder / "checkpoints" / f"epoch_{epoch:03d}.pt", weights_only=True)["model"]
    return {k[len(branch) + 1 :]: v for k, v in state.items() if k.startswith(f"{branch}.")}


def test_a_frozen_branch_keeps_every_weight_bit_for_bit_while_the_other_learns(tmp_path):
    run = trainer(tmp_path, epochs=2, frozen=("encoder",))
    encoder, decoder = weights(run.model.encoder), weights(run.model.decoder)
    outcome = run.run(data(), {"input": data()}, Progress())
    # weight decay, Adam's moments and batch-norm statistics would each move it: none did
    assert same(weights(run.model.encoder), encoder)
    assert not same(weights(run.model.decoder), decoder)
    assert all(row["grad_norm_encoder"] == 0 and row["grad_norm_decoder"] > 0 for row in outcome.history)
    assert all(p.requires_grad for p in run.model.parameters())  # thawed again for whoever uses it next


def test_warm_up_keeps_a_branch_unchanged_for_exactly_its_epochs_then_trains_it(tmp_path):
    run = trainer(tmp_path, epochs=4, warm_up=("encoder",), warm_up_epochs=2)
    initial = weights(run.model.encoder)
    outcome = run.run(data(), {"input": data()}, Progress())
    assert same(saved_branch(tmp_path, 1, "encoder"), initial)
    assert same(saved_branch(tmp_path, 2, "encoder"), initial)
    assert not same(saved_branch(tmp_path, 3, "encoder"), initial)
    assert not same(saved_branch(tmp_path, 1, "decoder"), weights(TinyAE().decoder))  # the decoder trained all along
    norms = [row["grad_norm_encoder"] for row in outcome.history]
    assert norms[:2] == [0.0, 0.0] and all(n > 0 for n in norms[2:])


def test_loss_parts_and_gradient_norms_per_branch_are_in_history_json(tmp_path):
    outcome = trainer(tmp_path, epochs=3).run(data(), {"input": data()}, Progress())
    history = json.loads((tmp_path / "history.json").read_text())
    assert history == outcome.history and [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert {
            "train_loss",
            "loss_reconstruction",
            "loss_latent",
            "grad_norm_encoder",
            "grad_norm_decoder",
            "seconds",
        } <= set(row)
        assert row["train_loss"] == pytest.approx(row["loss_reconstruction"] + row["loss_latent"])
        assert row["grad_norm_encoder"] > 0 and row["grad_norm_decoder"] > 0
        assert "train_accuracy" not in row  # not a classifier
    with open(tmp_path / "history.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert [float(r["grad_norm_encoder"]) for r in table] == [row["grad_norm_encoder"] for row in history]


def test_a_classifier_gets_its_training_accuracy_and_a_one_class_model_its_loss_in_the_progress(tmp_path):
    model = _TupleOutput(nn.Linear(8, 3))
    classes = torch.arange(40) % 3
    outcome = Trainer(
        model,
        tmp_path / "classes",
        LoopConfig(epochs=2, batch_size=16),
        CPU,
        lambda outputs, t: nn.functional.cross_entropy(outputs[0], t["class"]),
        lambda net: {"val_accuracy": 0.5},
        "val_accuracy",
        "sig",
    ).run(data(), {"class": classes}, Progress())
    assert all(0 <= row["train_accuracy"] <= 1 and row["val_accuracy"] == 0.5 for row in outcome.history)
    job = RecordingProgress()
    trainer(tmp_path / "ae", epochs=2).run(data(), {"input": data()}, job)
    said = [message for *_, message, _ in job.updates]
    assert any(m.startswith("tiny: epoch 2/2, loss ") for m in said)


class _TupleOutput(nn.Module):
    """A classifier's outputs: (logits, no auxiliary head)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), None


def test_without_validation_patience_stops_on_the_training_loss(tmp_path):
    config = LoopConfig(epochs=6, patience=1, batch_size=16, learning_rate=10.0)  # a rate that cannot settle
    model = TinyAE()
    outcome = Trainer(model, tmp_path, config, CPU, two_parts, None, "", "sig").run(
        data(), {"input": data()}, Progress()
    )
    losses = [row["train_loss"] for row in outcome.history]
    assert outcome.best_score == -min(losses)
    if outcome.stopped_early:
        assert outcome.last_epoch < 6 and losses[-1] >= min(losses)


def test_an_interrupted_run_resumes_at_the_next_epoch_with_the_steps_and_weights_of_an_uninterrupted_one(tmp_path):
    whole = trainer(tmp_path / "whole", epochs=4, warm_up=("encoder",), warm_up_epochs=1)
    uninterrupted = whole.run(data(), {"input": data()}, Progress())
    assert uninterrupted.steps == 4 * 3  # 40 items in batches of 16: three steps an epoch

    with pytest.raises(Cancelled):
        trainer(tmp_path / "cut", epochs=4, warm_up=("encoder",), warm_up_epochs=1).run(
            data(), {"input": data()}, StopAfter("epoch 2/4,")
        )
    assert torch.load(tmp_path / "cut" / LAST, weights_only=True)["epoch"] == 2
    torch.manual_seed(123)  # whatever happened meanwhile: the checkpoint restores the random state
    again = trainer(tmp_path / "cut", epochs=4, warm_up=("encoder",), warm_up_epochs=1)
    resumed = again.run(data(), {"input": data()}, Progress(), resume=True)
    assert resumed.resumed_from == 2 and resumed.last_epoch == 4
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.steps == uninterrupted.steps
    assert same(weights(again.model), weights(whole.model))
    finished = trainer(tmp_path / "cut", epochs=4, warm_up=("encoder",), warm_up_epochs=1)
    assert finished.finished(restore=True).steps == uninterrupted.steps
    assert same(weights(finished.model), weights(whole.model))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_a_checkpoint", "missing_keys"])
def test_a_damaged_checkpoint_is_named_and_nothing_is_trained(tmp_path, damage):
    with pytest.raises(Cancelled):
        trainer(tmp_path, epochs=3).run(data(), {"input": data()}, StopAfter("epoch 1/3,"))
    path = tmp_path / LAST
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "not_a_checkpoint":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"signature": "sig", "finished": False, "epoch": 1}, path)
    with pytest.raises(EarmarkError, match=r"checkpoint .*last.pt.* damaged .*without --resume"):
        trainer(tmp_path, epochs=3).run(data(), {"input": data()}, Progress(), resume=True)


def test_resume_refuses_a_checkpoint_of_other_settings_and_a_folder_without_one(tmp_path):
    with pytest.raises(Cancelled):
        trainer(tmp_path, epochs=3).run(data(), {"input": data()}, StopAfter("epoch 1/3,"))
    other = trainer(tmp_path, epochs=3)
    other.signature = "other clips"
    with pytest.raises(EarmarkError, match="changed since the checkpoint"):
        other.run(data(), {"input": data()}, Progress(), resume=True)
    with pytest.raises(EarmarkError, match="nothing to resume"):
        trainer(tmp_path / "empty").run(data(), {"input": data()}, Progress(), resume=True)


def test_an_unknown_branch_is_refused_and_the_workspace_is_per_detector_and_group(tmp_path):
    with pytest.raises(EarmarkError, match="no branch named latent; branches: encoder, decoder"):
        trainer(tmp_path, frozen=("latent",))
    assert detector_workspace(tmp_path, "dcase_ae", "fan/section_00") == (
        tmp_path / "training" / "dcase_ae" / detector_workspace(tmp_path, "x", "fan/section_00").name
    )
    assert detector_workspace(tmp_path, "dcase_ae", "fan/section_00").parent == tmp_path / "training" / "dcase_ae"


#: A run killed with SIGKILL after its second epoch: it says so, then waits to be killed. It computes on the
#: test process's thread count (argv[2]): sums split over other thread counts differ in the last bits.
KILLED_RUN = """
import sys
import torch
from engine.jobs import Progress
from tests.engine.test_training import data, trainer

torch.set_num_threads(int(sys.argv[2]))

def hear(done, total, message):
    if "epoch 2/4," in message:
        print("epoch 2 done", flush=True)
        sys.stdin.readline()  # blocks until the test kills this process

trainer(sys.argv[1], epochs=4, warm_up=("encoder",), warm_up_epochs=1).run(data(), {"input": data()}, Progress(hear))
"""


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path / "killed"), str(torch.get_num_threads())],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "epoch 2 done"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert torch.load(tmp_path / "killed" / LAST, weights_only=True)["epoch"] == 2
    resumed_run = trainer(tmp_path / "killed", epochs=4, warm_up=("encoder",), warm_up_epochs=1)
    resumed = resumed_run.run(data(), {"input": data()}, Progress(), resume=True)
    whole_run = trainer(tmp_path / "whole", epochs=4, warm_up=("encoder",), warm_up_epochs=1)
    whole = whole_run.run(data(), {"input": data()}, Progress())
    assert resumed.resumed_from == 2 and resumed.steps == whole.steps
    assert same(weights(resumed_run.model), weights(whole_run.model))


def test_the_classifiers_refuse_a_warm_up_they_have_no_encoder_for():
    from engine.classifiers.leak import leak_config
    from engine.classifiers.sound import sound_config

    with pytest.raises(EarmarkError, match="leak classifier: warm_up_epochs is for models with an encoder"):
        leak_config("binary", {"warm_up_epochs": "2"})
    with pytest.raises(EarmarkError, match="sound classifier: warm_up_epochs is for models with an encoder"):
        sound_config({"warm_up_epochs": "1"})


def test_an_epoch_with_every_branch_frozen_is_refused_with_a_message_not_a_crash(tmp_path):
    # The warm-up freezes the encoder while the decoder is frozen for the run: nothing could train in epoch 1.
    both = trainer(tmp_path, epochs=2, frozen=("decoder",), warm_up=("encoder",), warm_up_epochs=1)
    with pytest.raises(EarmarkError, match="tiny: nothing would train in epoch 1: every branch is frozen"):
        both.run(data(), {"input": data()}, Progress())


class TinyLinearAE(nn.Module):
    """An auto-encoder without batch norm (as the AST, with layer norm): one item is a batch it can train on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder, self.decoder = nn.Linear(8, 4), nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


def test_a_model_without_batch_norm_trains_on_one_item_and_no_epoch_passes_for_a_fit_without_a_step(tmp_path):
    one = data()[:1]
    model = TinyLinearAE()
    branches = {"encoder": model.encoder, "decoder": model.decoder}
    config = LoopConfig(epochs=3, patience=100, batch_size=16)
    single = Trainer(model, tmp_path / "one", config, CPU, two_parts, None, "", "sig", "tiny: ", branches, min_batch=1)
    outcome = single.run(one, {"input": one}, Progress())
    assert outcome.steps == 3, "one step an epoch"
    assert all(row["train_loss"] > 0 and row["grad_norm_decoder"] > 0 for row in outcome.history)
    # A model with batch norm cannot train on one item: said, instead of a random network saved with loss 0.
    with pytest.raises(EarmarkError, match="tiny: too little training data: 1 training item.*more or longer normal"):
        trainer(tmp_path / "batch_norm").run(one, {"input": one}, Progress())


def test_a_step_the_loss_scaler_skips_is_not_counted():
    from engine.training import _stepped

    weight = nn.Parameter(torch.ones(2))
    optimiser = torch.optim.AdamW([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # as on CUDA, where mixed precision uses one
    scaler.scale((weight * torch.tensor([float("inf"), 1.0])).sum()).backward()  # a half-precision overflow
    assert not _stepped(optimiser, scaler), "skipped: inf gradient"
    assert torch.equal(weight.detach(), torch.ones(2)) and scaler.get_scale() < 1024.0
    optimiser.zero_grad()
    scaler.scale(weight.sum()).backward()
    assert _stepped(optimiser, scaler), "a finite gradient steps"
    assert not torch.equal(weight.detach(), torch.ones(2))
    weight.grad = torch.ones(2)
    assert _stepped(torch.optim.AdamW([weight]), torch.amp.GradScaler("cpu", enabled=False)), "no scaler: a step"


def test_resume_after_a_finished_run_of_other_clips_trains_afresh_and_says_so(tmp_path):
    fresh = trainer(tmp_path / "fresh", epochs=2).run(data(), {"input": data()}, Progress())
    trainer(tmp_path / "group", epochs=2).run(data(), {"input": data()}, Progress())  # finished
    changed = trainer(tmp_path / "group", epochs=2)
    changed.signature = "other clips"  # the group's clips changed since
    progress = Progress()
    outcome = changed.fit(data(), {"input": data()}, progress, resume=True)
    assert outcome.resumed_from is None and outcome.steps == fresh.steps
    [said] = progress.problems
    assert "tiny: the finished training in" in said and "trained afresh" in said
    # the same clips: the finished outcome is taken as it is, nothing trains again
    again = trainer(tmp_path / "group", epochs=2)
    again.signature = "other clips"
    progress = Progress()
    assert again.fit(data(), {"input": data()}, progress, resume=True).steps == fresh.steps
    assert not progress.problems
