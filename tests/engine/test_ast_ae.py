"""The AST auto-encoder as its users meet it: `earmark fit --detector ast_ae --set epochs=3` trains it on the
synthetic set and keeps its curves; a cancelled training resumes at the next epoch; warm-up epochs leave the
encoder untouched; AST weights set up with `earmark weights add ast` are where the encoder starts; a saved
model scores as it did; its maps lie on the AST patch grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import weights
from engine.audio.feature_cache import FeatureCache
from engine.cli import main
from engine.detectors.registry import detector_class, load_model, make_config
from engine.errors import EarmarkError
from engine.jobs import Cancelled, Progress
from engine.store import results
from engine.store.project import Project
from engine.training import LAST
from tests.helpers import StopAfter, tiny_ast

GROUP = "fan/section_00"
#: A from-scratch AST small enough to train in seconds on a CPU; every other setting is the default.
SMALL = {
    "hidden_size": "32",
    "layers": "1",
    "heads": "2",
    "window_frames": "64",
    "decoder_width": "32",
    "batch_size": "4",
}


def _clips(project, split=None):
    return [c for c in project.clips() if c.group == GROUP and (split is None or c.split == split)]


def _detector(tmp_path, **settings):
    config = make_config("ast_ae", {**SMALL, **settings})
    return detector_class("ast_ae")(config, cache=FeatureCache(tmp_path / "features"))


def _encoder_state(detector) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in detector.branches()["encoder"].state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_through_the_cli_trains_three_epochs_and_keeps_the_curves(toy_project, capsys):
    folder = toy_project.folder
    settings = [f"--set={k}={v}" for k, v in SMALL.items()]
    assert main(["fit", str(folder), "--detector", "ast_ae", "--group", GROUP, "--set", "epochs=3", *settings]) == 0
    assert "encoder: a small AST trained from scratch" in capsys.readouterr().out, "the user is told which"
    with Project.open(folder) as project:
        record = results.latest_models(project, "ast_ae")[GROUP]
        model_folder = results.model_folder(project, record)
    history = json.loads((model_folder / "history.json").read_text())
    from engine.training import detector_workspace

    training = detector_workspace(project.artifacts, "ast_ae", GROUP)  # where --resume finds it
    assert (training / "checkpoints" / "last.pt").is_file()
    assert (training / "history.csv").read_text().count("\n") == 4, "a header and one row per epoch"
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:  # loss per part and gradient norm per branch, every epoch
        for name in ("loss_latent", "loss_reconstruction", "grad_norm_encoder", "grad_norm_decoder"):
            assert np.isfinite(row[name]) and row[name] >= 0, name
        assert row["grad_norm_encoder"] > 0 and row["grad_norm_decoder"] > 0
        assert row["train_loss"] == pytest.approx(row["loss_latent"] + row["loss_reconstruction"])
    loaded = load_model(model_folder)
    assert loaded.info["encoder"] == "scratch" and loaded.info["epochs_trained"] == 3
    test = _clips(toy_project, "test")
    detections = loaded.score(test)
    assert len(detections) == len(test) and all(np.isfinite(d.score) for d in detections)


def test_a_cancelled_training_resumes_at_the_next_epoch_as_if_never_stopped(toy_project, tmp_path):
    clips = _clips(toy_project)
    whole = _detector(tmp_path, epochs="3")
    whole.training_folder = tmp_path / "whole"
    whole.fit(clips)

    first = _detector(tmp_path, epochs="3")
    first.training_folder = tmp_path / "training"
    with pytest.raises(Cancelled):
        first.fit(clips, StopAfter("epoch 1/3,"))
    assert (tmp_path / "training" / "checkpoints" / "last.pt").is_file()
    [cancelled_epoch] = json.loads(torch.load(tmp_path / "training" / LAST, weights_only=True)["history"])

    resumed = _detector(tmp_path, epochs="3")
    resumed.training_folder, resumed.resume = tmp_path / "training", True
    resumed.fit(clips)
    assert resumed.info["resumed_from"] == 1
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    # Epoch 1 is the cancelled run's own (its time to the digit), not trained again: a retrain from scratch
    # would reach the same weights and step count.
    assert resumed.history[0] == cancelled_epoch
    # The optimiser took as many steps as the uninterrupted run: it went on at epoch 2, not again from 1.
    assert resumed.info["steps"] == whole.info["steps"] > 0
    assert _same(resumed.branches()["decoder"].state_dict(), whole.branches()["decoder"].state_dict())
    test = _clips(toy_project, "test")
    np.testing.assert_allclose([d.score for d in resumed.score(test)], [d.score for d in whole.score(test)], rtol=1e-5)


def test_earmark_fit_resume_continues_a_cancelled_fit_of_a_project_at_the_next_epoch(toy_project, tmp_path):
    from engine.detectors import runs

    settings = {**SMALL, "epochs": "3"}
    with pytest.raises(Cancelled):  # Cancel pressed once the first epoch is done
        runs.fit(runs.Session(toy_project), "ast_ae", settings, group=GROUP, progress=StopAfter("epoch 1/3,"))
    from engine.training import detector_workspace

    last = detector_workspace(toy_project.artifacts, "ast_ae", GROUP) / LAST
    [cancelled_epoch] = json.loads(torch.load(last, weights_only=True)["history"])
    assert not results.latest_models(toy_project, "ast_ae"), "no model from a cancelled fit"
    sets = [f"--set={k}={v}" for k, v in settings.items()]
    assert main(["fit", str(toy_project.folder), "--detector", "ast_ae", "--group", GROUP, "--resume", *sets]) == 0
    with Project.open(toy_project.folder) as project:
        folder = results.model_folder(project, results.latest_models(project, "ast_ae")[GROUP])
    model = load_model(folder)
    assert model.info["resumed_from"] == 1
    history = json.loads((folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[0] == cancelled_epoch, "epoch 1 is the cancelled fit's own, not trained again"
    whole = _detector(tmp_path, epochs="3")
    whole.fit(_clips(toy_project))
    assert model.info["steps"] == whole.info["steps"], "the optimiser went on at epoch 2, not again from 1"


def test_warm_up_epochs_leave_the_encoder_unchanged_and_it_trains_afterwards(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="3", warm_up_epochs="2")
    initial = _encoder_state(_detector(tmp_path))  # the same seed builds the same starting network
    detector.training_folder = tmp_path / "training"
    detector.fit(_clips(toy_project))
    checkpoints = tmp_path / "training" / "checkpoints"
    by_epoch = {}
    for epoch in (1, 2, 3):
        state = torch.load(checkpoints / f"epoch_{epoch:03d}.pt", weights_only=True)["model"]
        by_epoch[epoch] = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    assert _same(by_epoch[1], initial) and _same(by_epoch[2], initial), "frozen for the warm-up epochs"
    assert not _same(by_epoch[3], initial), "trained after them"
    norms = [row["grad_norm_encoder"] for row in detector.history]
    assert norms[0] == norms[1] == 0 and norms[2] > 0
    assert all(row["grad_norm_decoder"] > 0 for row in detector.history)


def test_a_branch_frozen_for_the_whole_run_never_changes(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="2", freeze="decoder")
    before = {k: v.clone() for k, v in _detector(tmp_path).branches()["decoder"].state_dict().items()}
    detector.fit(_clips(toy_project))
    assert _same(detector.branches()["decoder"].state_dict(), before)
    assert all(row["grad_norm_decoder"] == 0 for row in detector.history)
    with pytest.raises(EarmarkError, match="freeze must be one of encoder, decoder"):
        make_config("ast_ae", {"freeze": "b3"})


def test_ast_weights_set_up_are_where_the_encoder_starts(toy_project, tmp_path):
    from transformers import ASTModel

    path = tiny_ast(tmp_path / "ast-tiny")
    with pytest.raises(EarmarkError, match="no ast weights are set up.*earmark weights add ast"):
        _detector(tmp_path, encoder="pretrained").branches()
    scratch = _detector(tmp_path)  # encoder=auto without weights: the small AST from scratch
    scratch.network()
    assert scratch.info["encoder"] == "scratch"
    weights.add("ast", str(path))
    detector = _detector(tmp_path)  # encoder=auto: the weights set up
    published = ASTModel.from_pretrained(path).state_dict()
    assert _same(_encoder_state(detector), published)
    assert detector.info["encoder"] == "pretrained" and detector.info["weights"] == str(path)
    detector.fit(_clips(toy_project)[:6] + [c for c in _clips(toy_project) if c.domain == "target"][:2])
    assert not _same(_encoder_state(detector), published), "fine-tuned"
    [detection] = detector.score(_clips(toy_project, "test")[:1])
    assert detection.anomaly_map.shape[0] == 12, "the published AST's grid: 12 rows at stride 10"
    # A saved fine-tuned model holds its own architecture and weights: it loads without the weights set up.
    folder = detector.save(tmp_path / "model")
    weights.remove("ast")
    loaded = load_model(folder)
    assert loaded.info["encoder"] == "pretrained"
    assert loaded.score(_clips(toy_project, "test")[:1])[0].score == pytest.approx(detection.score, rel=1e-5)


def test_a_saved_model_scores_and_maps_as_it_did(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="2")
    detector.fit(_clips(toy_project))
    test = _clips(toy_project, "test")
    before = detector.score(test)
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    after = loaded.score(test)
    np.testing.assert_allclose([d.score for d in after], [d.score for d in before], rtol=1e-5)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, rtol=1e-5, atol=1e-7)
        assert a.decision == b.decision


def test_the_score_combines_the_whitened_latent_distance_and_the_mad_scaled_error(toy_project, tmp_path):
    """S = 0.7 M(z) + 0.3 E by default; the weights are settings (all of M, or all of E, rank as each alone)."""
    clips = _clips(toy_project)
    test = _clips(toy_project, "test")
    scores = {}
    for weights_set in ((0.7, 0.3), (1.0, 0.0), (0.0, 1.0)):
        detector = _detector(
            tmp_path, epochs="1", latent_weight=str(weights_set[0]), reconstruction_weight=str(weights_set[1])
        )
        detector.fit(clips)
        scores[weights_set] = np.array([d.score for d in detector.score(test)])
    np.testing.assert_allclose(scores[(0.7, 0.3)], 0.7 * scores[(1.0, 0.0)] + 0.3 * scores[(0.0, 1.0)], rtol=1e-4)
    assert np.all(scores[(1.0, 0.0)] > 0), "M is a distance"


def test_the_map_is_the_per_patch_error_on_the_ast_grid_and_frames_have_errors(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="1")
    detector.fit(_clips(toy_project))
    test = _clips(toy_project, "test")[:3]
    errors = detector.frame_reconstruction_errors(test)
    for clip, detection in zip(test, detector.score(test), strict=True):
        rows, columns = detection.anomaly_map.shape
        assert rows == 8, "128 mel bins in 16-bin patches"
        np.testing.assert_allclose(detection.anomaly_map.mean(axis=0), detection.frame_scores, rtol=1e-5)
        spans = detection.map_time_spans_s
        assert np.allclose(np.diff(spans[:, 0]), 0.16, atol=1e-4) or columns == 1, "a column every 16 frames"
        frames = errors[clip.clip_id]
        assert len(frames) == columns * 16 and np.all(np.isfinite(frames)) and np.all(frames >= 0)
        # the frames' raw errors are the patches' errors spread over them: the same mean (the map's rows are
        # in units of the training clips' error of each row)
        raw = detection.anomaly_map * detector.row_scale[:, None]
        assert frames.mean() == pytest.approx(raw.mean(), rel=1e-4)


def test_the_fit_estimate_knows_that_fine_tuning_the_published_ast_costs_far_more(toy_project, tmp_path):
    from engine.fit_estimate import estimate_fit

    clips = toy_project.clips()
    scratch = estimate_fit(clips, ["ast_ae"]).seconds_by_detector["ast_ae"]
    assert scratch > estimate_fit(clips, ["dcase_ae"], {"epochs": 20}).seconds_by_detector["dcase_ae"]
    weights.add("ast", str(tiny_ast(tmp_path / "ast-tiny")))
    assert estimate_fit(clips, ["ast_ae"]).seconds_by_detector["ast_ae"] > 20 * scratch


def test_the_ensemble_takes_ast_ae_only_when_named():
    assert "ast_ae" not in make_config("ensemble").members, "a transformer per group would multiply its fit time"
    named = make_config(
        "ensemble", {"members": "knn,ast_ae", "weights": "ast_ae:2", "member_settings": "ast_ae.epochs=3"}
    )
    assert named.members == ("knn", "ast_ae") and named.settings_for("ast_ae") == {"epochs": "3"}


def test_a_clip_shorter_than_one_patch_is_reported_and_the_rest_are_scored(toy_project, tmp_path):
    import dataclasses

    from engine.jobs import RecordingProgress
    from tests.helpers import tone, write_wav

    detector = _detector(tmp_path, epochs="1")
    detector.fit(_clips(toy_project))
    test = _clips(toy_project, "test")[:2]
    short = dataclasses.replace(
        test[0],
        clip_id="short",
        path=str(write_wav(tmp_path / "short.wav", tone(0.1))),
        duration_s=0.1,
        checksum="1" * 64,
    )
    progress = RecordingProgress()
    detections = detector.score([short, *test], progress)
    assert [d.clip_id for d in detections] == [c.clip_id for c in test]
    assert progress.problems == ["short: skipped, too short for ast_ae: 0.10 s, needs 0.18 s"]


def test_a_warm_up_with_the_decoder_frozen_is_refused_in_the_settings():
    with pytest.raises(EarmarkError, match="ast_ae: warm_up_epochs freezes the encoder while freeze=decoder"):
        make_config("ast_ae", {"warm_up_epochs": "1", "freeze": "decoder"})
    make_config("ast_ae", {"warm_up_epochs": "1", "freeze": "encoder"})  # the decoder trains: allowed


def test_a_group_with_one_training_window_trains_on_it(toy_project, tmp_path):
    # One 1 s clip in one window of 1024 frames: nothing is held out, and the one window is a batch.
    detector = _detector(tmp_path, epochs="2", window_frames="1024")
    detector.fit(_clips(toy_project, "train")[:1])
    assert detector.info["steps"] == 2, "one optimiser step an epoch"
    assert all(row["train_loss"] > 0 and row["grad_norm_decoder"] > 0 for row in detector.history)


def test_resume_refuses_a_changed_number_of_epochs(toy_project, tmp_path):
    clips = _clips(toy_project)
    first = _detector(tmp_path, epochs="3")
    first.training_folder = tmp_path / "training"
    with pytest.raises(Cancelled):
        first.fit(clips, StopAfter("epoch 1/3,"))
    longer = _detector(tmp_path, epochs="4")
    longer.training_folder, longer.resume = tmp_path / "training", True
    with pytest.raises(EarmarkError, match="the labels, the clips or the settings have changed"):
        longer.fit(clips)
    # settings that only change scoring still resume
    rescored = _detector(tmp_path, epochs="3", latent_weight="0.5")
    rescored.training_folder, rescored.resume = tmp_path / "training", True
    rescored.fit(clips)
    assert rescored.info["resumed_from"] == 1 and rescored.config.latent_weight == 0.5


def test_fit_resume_of_every_group_trains_afresh_a_finished_group_whose_clips_changed(toy_project, tmp_path):
    from engine.detectors import runs
    from engine.store.clip_fields import set_fields

    settings = {**SMALL, "epochs": "2"}
    session = runs.Session(toy_project)
    fitted = {r.group_key: r for r in runs.fit(session, "ast_ae", settings)}
    assert len(fitted) >= 2, "a project of several groups"
    first = next(c for c in toy_project.clips(split="train") if c.group == GROUP)
    set_fields(toy_project, [first.clip_id], {"label": "anomaly"})  # GROUP's training clips changed since
    progress = Progress()
    refitted = {r.group_key: r for r in runs.fit(session, "ast_ae", settings, resume=True, progress=progress)}
    assert set(refitted) == set(fitted), "every group fitted, none aborted the run"
    [said] = progress.problems
    assert "the finished training in" in said and "trained afresh" in said
    before, after = (load_model(results.model_folder(toy_project, r[GROUP])) for r in (fitted, refitted))
    assert after.info["resumed_from"] is None and after.info["steps"] > 0
    assert (
        after.info["trained_clips"] + after.info["held_out"]
        == before.info["trained_clips"] + before.info["held_out"] - 1
    )
    assert refitted[GROUP].model_id != fitted[GROUP].model_id


def test_fitting_keeps_only_what_scoring_needs_of_each_batch_on_the_device(toy_project, tmp_path, monkeypatch):
    import weakref

    from engine.detectors.ast_ae.model import AstAutoEncoder

    alive_at_most = []
    outputs: list[weakref.ref] = []
    forward = AstAutoEncoder.forward

    def watched(self, x):
        alive_at_most.append(sum(ref() is not None for ref in outputs))
        out = forward(self, x)
        outputs.append(weakref.ref(out.reconstruction))
        return out

    detector = _detector(tmp_path, epochs="1")
    detector.fit(_clips(toy_project))
    monkeypatch.setattr(AstAutoEncoder, "forward", watched)
    windows = detector._windows(_clips(toy_project, "train"), Progress())
    from engine.detectors.ast_ae.scoring import clip_results

    clip_results(detector.network(), _clips(toy_project, "train"), windows, 2)  # many batches of two windows
    # While a batch runs, at most the one before it is still referenced: none is kept for the rest of the fit.
    assert len(alive_at_most) > 3 and max(alive_at_most) <= 1, "earlier batches' reconstructions kept"


def test_the_few_normals_warning_counts_the_scores_held_out_not_the_clips_fitted_on(toy_project, tmp_path):
    # ast_ae holds a fifth of its normals out of training: 5 clips leave 1 held-out score for the threshold.
    detector = _detector(tmp_path, epochs="1")
    detector.fit(_clips(toy_project, "train")[:5])
    assert detector.info["held_out"] == 1
    assert "fitted on only 5 normal clip(s): its threshold rests on 1 held-out score(s)" in detector.info["warning"]
