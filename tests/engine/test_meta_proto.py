"""The metadata ProtoNet as its users meet it: `earmark fit --detector meta_proto --set epochs=2` trains on the
synthetic set's speed, load, microphone and noise metadata and says which tasks it found and dropped; a
project with no metadata at all still fits, on pseudo-classes, and says so; a cancelled training resumes at
the next epoch; `reptile=true` moves the weights towards each task's adapted ones, a different task each
outer step; enrolled target clips become prototypes of their domain."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from engine.audio.feature_cache import FeatureCache
from engine.cli import main
from engine.data.importers import import_source
from engine.detectors import runs
from engine.detectors.meta_proto.detector import SCORED_AT_ONCE
from engine.detectors.meta_proto.episodes import EpisodePool, ReptileModel, reptile_loss
from engine.detectors.metadata import ConvEmbedding
from engine.detectors.registry import detector_class, load_model, make_config
from engine.jobs import Cancelled, Progress, RecordingProgress
from engine.store import results
from engine.store.project import Project
from engine.training import LAST, LoopConfig, Trainer, detector_workspace
from tests.helpers import write_hum

GROUP = "fan/section_00"
#: Small enough to train in a second or two on a CPU; every other setting is the default.
SMALL = {"episodes": "6", "dim": "32", "n_mels": "32", "segment_frames": "32"}


def _clips(project, split=None):
    return [c for c in project.clips() if c.group == GROUP and (split is None or c.split == split)]


def _detector(tmp_path, **settings):
    config = make_config("meta_proto", {**SMALL, **settings})
    return detector_class("meta_proto")(config, cache=FeatureCache(tmp_path / "features"))


def test_fit_through_the_cli_trains_on_the_metadata_tasks_and_says_which(toy_project, capsys):
    folder = toy_project.folder
    settings = [f"--set={k}={v}" for k, v in SMALL.items()]
    assert main(["fit", str(folder), "--detector", "meta_proto", "--group", GROUP, "--set", "epochs=2", *settings]) == 0
    out = capsys.readouterr().out
    assert "metadata tasks: domain (2 classes: source, target)" in out
    for task in ("load_level", "mic_position_id", "noise_id", "speed_level"):
        assert task in out.split("metadata tasks:")[1].splitlines()[0], task
    assert "task dropped: section: one class (00): one section per model group" in out
    with Project.open(folder) as project:
        record = results.latest_models(project, "meta_proto")[GROUP]
        model_folder = results.model_folder(project, record)
    history = json.loads((model_folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["grad_norm_encoder"] > 0 and row["grad_norm_head"] > 0 for row in history)
    assert (detector_workspace(toy_project.artifacts, "meta_proto", GROUP) / LAST).is_file(), "where --resume looks"
    model = load_model(model_folder)
    assert model.info["epochs_trained"] == 2 and "fallback" not in model.info
    test = _clips(toy_project, "test")
    detections = model.score(test)
    assert len(detections) == len(test) and all(np.isfinite(d.score) for d in detections)


def test_a_project_without_metadata_fits_on_pseudo_classes_and_says_so(tmp_path):
    recordings = tmp_path / "recordings"
    for n in range(6):
        write_hum(recordings / "train" / f"machine_{n}.wav", seconds=1.5, seed=n)
    write_hum(recordings / "test" / "odd.wav", seconds=1.5, seed=10, burst=True)
    with Project.create(tmp_path / "project") as project:
        import_source(project, recordings / "train", "folder", defaults={"split": "train", "label": "normal"})
        import_source(project, recordings / "test", "folder", defaults={"split": "test"})
        progress = RecordingProgress()
        [record] = runs.fit(runs.Session(project), "meta_proto", {**SMALL, "epochs": "2"}, progress=progress)
        model = load_model(results.model_folder(project, record))
        test = [c for c in project.clips() if c.split == "test"]
        [detection] = model.score(test)
    said = "trained on self-supervised pseudo-classes (4 clips x 4 views)"  # 6 clips, 2 held out for the threshold
    assert said in model.info["fallback"] and "no metadata tasks (" in model.info["fallback"]
    assert any(said in message for *_, message, _ in progress.updates)
    assert model.info["epochs_trained"] == 2 and np.isfinite(detection.score)


class _CancelAfter(Progress):
    """Cancels the run once `epochs` epochs have finished (what a user's Cancel button does mid-training)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def _emit(self, done: int, total: int, message: str) -> None:
        if f"epoch {self.epochs}/" in message and "loss" in message:
            self.cancel()


@pytest.mark.parametrize("reptile", ["false", "true"])
def test_a_cancelled_training_resumes_at_the_next_epoch_as_if_never_stopped(toy_project, tmp_path, reptile):
    clips = _clips(toy_project)
    whole = _detector(tmp_path, epochs="3", reptile=reptile, inner_steps="2")
    whole.training_folder = tmp_path / "whole"
    whole.fit(clips)

    first = _detector(tmp_path, epochs="3", reptile=reptile, inner_steps="2")
    first.training_folder = tmp_path / "training"
    with pytest.raises(Cancelled):
        first.fit(clips, _CancelAfter(1))
    [cancelled_epoch] = json.loads(torch.load(tmp_path / "training" / LAST, weights_only=True)["history"])

    resumed = _detector(tmp_path, epochs="3", reptile=reptile, inner_steps="2")
    resumed.training_folder, resumed.resume = tmp_path / "training", True
    resumed.fit(clips)
    assert resumed.info["resumed_from"] == 1
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == cancelled_epoch, "epoch 1 is the cancelled run's own, not trained again"
    assert resumed.info["steps"] == whole.info["steps"] > 0
    # the same episodes drawn after the resume: the same weights and scores
    for name, value in whole.net.state_dict().items():
        assert torch.allclose(resumed.net.state_dict()[name].float(), value.float(), atol=1e-5), name
    test = _clips(toy_project, "test")
    np.testing.assert_allclose([d.score for d in resumed.score(test)], [d.score for d in whole.score(test)], rtol=1e-4)


def test_earmark_fit_resume_continues_a_cancelled_fit_of_a_project(toy_project):
    settings = {**SMALL, "epochs": "3"}
    with pytest.raises(Cancelled):  # Cancel pressed once the first epoch is done
        runs.fit(runs.Session(toy_project), "meta_proto", settings, group=GROUP, progress=_CancelAfter(1))
    assert not results.latest_models(toy_project, "meta_proto"), "no model from a cancelled fit"
    sets = [f"--set={k}={v}" for k, v in settings.items()]
    assert main(["fit", str(toy_project.folder), "--detector", "meta_proto", "--group", GROUP, "--resume", *sets]) == 0
    with Project.open(toy_project.folder) as project:
        folder = results.model_folder(project, results.latest_models(project, "meta_proto")[GROUP])
    assert load_model(folder).info["resumed_from"] == 1
    assert [row["epoch"] for row in json.loads((folder / "history.json").read_text())] == [1, 2, 3]


def test_reptile_moves_the_weights_a_meta_step_towards_each_tasks_adapted_weights(tmp_path):
    torch.manual_seed(0)
    items = torch.randn(24, 1, 16, 16) * 5 - 30
    labels = [("speed", torch.arange(24) % 3), ("load", torch.arange(24) // 12), ("noise", torch.arange(24) % 2)]
    encoder = ConvEmbedding(dim=8)
    model = ReptileModel(encoder, EpisodePool(items, labels), 2, 2, 2, inner_steps=3, inner_rate=0.01, meta_step=0.4)
    before = [p.detach().clone() for p in encoder.parameters()]
    config = LoopConfig(epochs=1, patience=5, batch_size=1, learning_rate=0.4, optimiser="sgd")
    trainer = Trainer(model, tmp_path, config, torch.device("cpu"), reptile_loss, None, "", "s", min_batch=1)
    adapted = []
    original = model.forward

    def forward(episode):  # what the outer step saw: the task's adapted weights
        step = original(episode)
        adapted.append([a.clone() for a in step.adapted])
        return step

    model.forward = forward
    trainer.run(torch.zeros(1), {}, RecordingProgress())
    [theta_prime] = adapted
    for theta, prime, after in zip(before, theta_prime, encoder.parameters(), strict=True):
        assert not torch.allclose(prime, theta), "the inner steps adapted every weight"
        torch.testing.assert_close(after.detach(), theta + 0.4 * (prime - theta), rtol=1e-5, atol=1e-6)
    # outer steps go from task to task
    trainer = Trainer(model, tmp_path / "more", config, torch.device("cpu"), reptile_loss, None, "", "s2", min_batch=1)
    trainer.run(torch.zeros(8), {}, RecordingProgress())
    assert len(set(model.tasks_drawn)) == 3 and len(model.tasks_drawn) == 9


def test_enrolled_target_clips_become_prototypes_of_the_target_domain(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="1")
    source = [c for c in _clips(toy_project) if c.domain != "target" or c.split != "train"]
    detector.fit(source)
    assert detector.memory.domains.count("target") == 0
    before = len(detector.memory.prototypes("target"))
    target = [c for c in _clips(toy_project, "train") if c.domain == "target"]
    detector.enrol(target)
    assert detector.memory.domains.count("target") == len(target)
    assert len(detector.memory.prototypes("target")) == before + len(target), "each clip its own prototype"
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    assert loaded.memory.ids == detector.memory.ids and loaded.memory.classes == detector.memory.classes


def test_a_few_fine_tuning_steps_adapt_the_encoder_to_the_target_domains_normals(toy_project, tmp_path):
    clips = _clips(toy_project)
    plain = _detector(tmp_path, epochs="1")
    plain.fit(clips)
    adapted = _detector(tmp_path, epochs="1", adapt_steps="2")
    adapted.fit(clips)
    trained_target = sum(c.domain == "target" for c in clips if c.split == "train") - sum(
        plain.memory.held[i] and d == "target" for i, d in enumerate(plain.memory.domains)
    )
    assert adapted.info["adapted_on"] == trained_target >= 2 and "adapted_on" not in plain.info
    weights = [(a, b) for a, b in zip(plain.net.parameters(), adapted.net.parameters(), strict=True)]
    assert any(not torch.equal(a, b) for a, b in weights), "the steps moved the encoder"


def test_distances_standardised_per_dimension_are_saved_with_the_model(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="1", standardise="true")
    detector.fit(_clips(toy_project))
    mean, spread = detector.memory.segment_stats
    assert len(mean) == len(spread) == 32 and torch.all(spread > 0)
    test = _clips(toy_project, "test")
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    np.testing.assert_allclose(
        [d.score for d in loaded.score(test)], [d.score for d in detector.score(test)], rtol=1e-5
    )


def test_the_fit_estimate_counts_episodes_and_reptiles_inner_steps():
    from engine.fit_estimate import fit_seconds

    base = fit_seconds("meta_proto", make_config("meta_proto"), 240.0)
    assert base == pytest.approx(0.04 * 200 + 0.02 * 240), "the quick matrix's 60 clips of 4 s: about 13 s"
    assert fit_seconds("meta_proto", make_config("meta_proto", {"epochs": "10"}), 240.0) > base
    reptile = make_config("meta_proto", {"reptile": "true", "episodes": "15", "inner_steps": "3"})
    assert fit_seconds("meta_proto", reptile, 240.0) == pytest.approx(0.04 * 225 + 0.02 * 240)


def test_one_training_clip_never_sets_the_threshold_from_a_match_with_itself(toy_project, tmp_path):
    """With one normal clip there is nothing to leave it out of: its held-out score must not be a distance
    to itself (about 0), which flagged every unseen normal clip."""
    normals = [c for c in _clips(toy_project, "train") if c.domain == "source" and c.label == "normal"][:1]
    detector = _detector(tmp_path, epochs="1")
    progress = RecordingProgress()
    detector.fit(normals, progress)
    assert "the encoder stays untrained" in detector.info["fallback"]
    assert "trained on" not in detector.info["fallback"], "no contradiction in the report"
    # the 1 s clip is one segment: no part of it can be left out, and the report says so
    assert any("too short to leave part of it out" in line for line in progress.problems)
    assert detector.threshold > 0.5
    test = [c for c in _clips(toy_project, "test") if c.domain == "source" and c.label == "normal"]
    flagged = [d.decision for d in detector.score(test)]
    assert np.mean(flagged) <= 0.5, f"{np.mean(flagged):.0%} of unseen normal clips flagged"


def test_one_long_training_clip_is_measured_by_its_segments_left_out_in_turn(tmp_path):
    from engine.detectors.meta_proto.alone import alone_score
    from engine.detectors.meta_proto.memory import Memory

    torch.manual_seed(0)
    vectors, fmaps = torch.randn(6, 8), torch.randn(6, 4, 2, 3)  # 6 segments, 2 rows x 3 columns of patches
    memory = Memory()
    memory.add("only", "source", "", vectors, fmaps.permute(0, 3, 2, 1).flatten(0, 1), True)
    raw, maps, viewed = alone_score(memory, "source", torch.zeros(6, 1, 8, 8), (vectors, fmaps), None, 0)
    assert not viewed and len(maps) == 6
    # each segment against the mean of the segments that do not overlap it, never itself
    expected = np.mean(
        [float(torch.dist(vectors[i], vectors[[j for j in range(6) if abs(i - j) >= 2]].mean(0))) for i in range(6)]
    )
    assert raw == pytest.approx(expected, rel=1e-5) and raw > 0
    assert all(m.min() > 0 for m in maps), "no patch met itself"
    memory.alone_raw = raw
    assert memory.held_out_scores(0.0)[0][0] == pytest.approx(raw), "the threshold rests on it"


def test_the_detectors_reptile_fit_takes_a_meta_step_towards_each_tasks_adapted_weights(
    toy_project, tmp_path, monkeypatch
):
    """Through the detector itself: each outer step of `reptile=true` is theta + meta_step * (theta' - theta),
    so an outer optimiser other than plain SGD at meta_step would fail here."""
    steps = []  # (theta before the outer step, the task's adapted theta')
    original = ReptileModel.forward

    def forward(self, episode):
        before = [p.detach().clone() for p in self.encoder.parameters()]
        step = original(self, episode)
        steps.append((before, [a.detach().clone() for a in step.adapted]))
        return step

    monkeypatch.setattr(ReptileModel, "forward", forward)
    settings = {"reptile": "true", "epochs": "1", "episodes": "3", "inner_steps": "2", "meta_step": "0.4"}
    detector = _detector(tmp_path, **settings)
    detector.fit(_clips(toy_project))
    assert len(steps) == 3
    after_each = [before for before, _ in steps[1:]] + [[p.detach() for p in detector.net.parameters()]]
    for (theta, prime), after in zip(steps, after_each, strict=True):
        assert any(not torch.allclose(a, t) for a, t in zip(after, theta, strict=True)), "the step moved"
        for t, p, a in zip(theta, prime, after, strict=True):
            torch.testing.assert_close(a, t + 0.4 * (p - t), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "prototypes,score,support",
    [("clip", "distance", "both"), ("class", "nll", "domain"), ("class", "distance", "both")],
)
def test_the_left_out_scores_of_all_clips_at_once_match_each_clip_left_out_in_turn(prototypes, score, support):
    from engine.detectors.meta_proto.memory import Memory

    torch.manual_seed(1)
    memory = Memory(prototypes, score, support)
    for i in range(9):
        count = 1 + i % 3
        domain, key = ("target" if i in (2, 5, 7) else "source"), ("" if i == 8 else f"load={i % 2}")
        memory.add(f"c{i}", domain, key, torch.randn(count, 6) + i % 2, torch.randn(count * 2, 2, 4), i % 2 == 0)
    memory.learn_standardisation(True)
    one_by_one = np.array([memory.left_out_score(i, scaled=False) for i in range(9)])
    np.testing.assert_allclose(memory.left_out_raws(), one_by_one, rtol=1e-4)
    cancelled = RecordingProgress()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        memory.learn_scales(True, cancelled)


def test_scoring_gathers_the_patch_bank_once_per_batch_and_domain(toy_project, tmp_path, monkeypatch):
    from engine.detectors.meta_proto.memory import Memory

    detector = _detector(tmp_path, epochs="1")
    detector.fit(_clips(toy_project))
    gathered = []
    original = Memory.bank
    monkeypatch.setattr(Memory, "bank", lambda self, *a, **k: gathered.append(a) or original(self, *a, **k))
    test = _clips(toy_project, "test")
    detector.score(test)
    batches = -(-len(test) // SCORED_AT_ONCE)
    assert len(gathered) <= len({c.domain for c in test}) * batches < len(test)


def test_the_fit_report_counts_the_clips_fitted_on_not_those_skipped(toy_project, tmp_path):
    clips = [c for c in _clips(toy_project, "train") if c.label == "normal"]
    write_hum(tmp_path / "short.wav", seconds=0.05)
    short = dataclasses.replace(clips[0], clip_id="short", path=tmp_path / "short.wav", duration_s=0.05, checksum="s")
    detector = _detector(tmp_path, epochs="1")
    detector.fit([*clips, short])
    assert detector.info["trained_on"] == len(clips)
