"""The attribute classifier as its users meet it: `earmark fit --detector attr_classifier --set epochs=2` learns
the synthetic set's attributes and says which metadata tasks it found and dropped; a project with no metadata
falls back to self-supervised pseudo-classes and still fits; a cancelled fit resumes at the next epoch;
enrolled target clips join the target bank without retraining; a saved model scores and maps as it did."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from engine.audio.feature_cache import FeatureCache
from engine.cli import main
from engine.data.importers import import_source
from engine.detectors import runs
from engine.detectors.attr_classifier.model import ArcFace, SubClusterAdaCos
from engine.detectors.registry import detector_class, load_model, make_config
from engine.errors import EarmarkError
from engine.jobs import Cancelled, Progress, RecordingProgress
from engine.store import results
from engine.store.project import Project
from engine.training import LAST, detector_workspace

GROUP = "fan/section_00"
#: Small and quick on the 1 s test clips; every other setting is the default.
SMALL = {"batch_size": "8", "segment_frames": "32"}


def _clips(project, split=None):
    return [c for c in project.clips() if c.group == GROUP and (split is None or c.split == split)]


def _detector(tmp_path, **settings):
    config = make_config("attr_classifier", {**SMALL, **settings})
    return detector_class("attr_classifier")(config, cache=FeatureCache(tmp_path / "features"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_through_the_cli_learns_the_attributes_and_says_which_tasks_it_dropped(toy_project, capsys):
    folder = toy_project.folder
    settings = [f"--set={k}={v}" for k, v in SMALL.items()]
    assert (
        main(["fit", str(folder), "--detector", "attr_classifier", "--group", GROUP, "--set", "epochs=2", *settings])
        == 0
    )
    said = capsys.readouterr().out
    assert "metadata tasks: load_level (2 classes" in said, "the user is told what it learnt"
    assert "task dropped: section: one class (00): one section per model group" in said
    with Project.open(folder) as project:
        model_folder = results.model_folder(project, results.latest_models(project, "attr_classifier")[GROUP])
    model = load_model(model_folder)
    # The synthetic set's attributes are the classes; the one section, the measured SNR and the domain are not.
    assert set(model.info["heads"]) >= {"speed_level", "load_level"} or model.info["classes"] == "joint"
    dropped = " ".join(model.info["dropped_tasks"])
    assert "section: one class (00): one section per model group" in dropped
    assert "snr_db" in dropped and "domain: not a class" in dropped
    assert not model.info["fallback"]
    history = json.loads((model_folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["grad_norm_encoder"] > 0 and row["grad_norm_head"] > 0 for row in history)
    training = detector_workspace(project.artifacts, "attr_classifier", GROUP)  # where --resume finds it
    assert (training / "checkpoints" / "last.pt").is_file()
    test = _clips(toy_project, "test")
    detections = model.score(test)
    assert len(detections) == len(test) and all(np.isfinite(d.score) for d in detections)


def test_a_project_without_metadata_trains_on_pseudo_classes_and_says_so(toy_project, tmp_path):
    """Plain folders of one machine: no section, no attributes, no domain: the fit report says it fell back."""
    source = tmp_path / "recordings"
    for split in ("train", "test"):
        (source / "pump" / split / "normal").mkdir(parents=True)
        for index, clip in enumerate([c for c in _clips(toy_project, split) if c.label == "normal"][:8]):
            shutil.copy(clip.path, source / "pump" / split / "normal" / f"{index:02d}.wav")
    with Project.create(tmp_path / "plain") as project:
        import_source(project, source, "folder")
        progress = RecordingProgress()
        [record] = runs.fit(runs.Session(project), "attr_classifier", {**SMALL, "epochs": "2"}, progress=progress)
        model = load_model(results.model_folder(project, record))
        said = " ".join(message for _, _, message, _ in progress.updates)
        test = [c for c in project.clips() if c.split == "test"]
    assert model.info["classes"] == "pseudo"
    assert "no metadata tasks (" in model.info["fallback"] and "self-supervised pseudo-classes" in said
    assert "section: no clip has a value" in model.info["fallback"]
    trained = model.info["trained_clips"]
    assert model.info["head_classes"] == [trained], "each trained clip its own class"
    assert all(np.isfinite(d.score) for d in model.score(test))


def test_joint_classes_where_combinations_have_clips_else_one_head_per_task(toy_project, tmp_path):
    clips = _clips(toy_project)
    # two speeds, one load: the combinations are the speeds, with several clips each
    recoded = [
        dataclasses.replace(c, attributes={"speed_level": str(i % 2), "load_level": "1"}) for i, c in enumerate(clips)
    ]
    joint = _detector(tmp_path, epochs="1")
    joint.fit(recoded)
    assert joint.info["classes"] == "joint" and joint.info["heads"] == {"joint": ["speed_level=0", "speed_level=1"]}
    assert joint.history[0]["train_accuracy"] >= 0, "every segment has a class: the curves show the accuracy"
    tasks = _detector(tmp_path, epochs="1")
    tasks.fit(clips)  # the synthetic set: four attributes, too few clips for any combination to repeat
    assert tasks.info["classes"] == "tasks" and len(tasks.info["heads"]) >= 2
    assert (
        "joint: fewer than two section x attribute combinations have >= 2 clips: one head per task instead"
        in (tasks.info["dropped_tasks"])
    ), "the fit report says why"


def test_supplemental_clean_machine_clips_join_training_and_noise_clips_are_mixed_in(toy_project, tmp_path):
    clips = _clips(toy_project)  # the group's training, test and supplemental clips
    plain = _detector(tmp_path, epochs="1")
    plain.fit(clips)
    assert "supplemental" not in plain.info, "off by default"
    detector = _detector(tmp_path, epochs="1", supplemental="true")
    detector.fit(clips)
    assert detector.info["supplemental"] == "2 clean-machine clip(s) trained on, 2 noise clip(s) mixed in"
    # every segment (the clean-machine clips' too) once as it is and once mixed with noise
    assert detector.info["training_segments"] >= 2 * plain.info["training_segments"] + 2
    assert "supp_type" not in " ".join(detector.info["dropped_tasks"]), "the kind of clip is no class"
    assert detector.info["trained_on"] == plain.info["trained_on"], "the banks hold the normal clips only"


class _CancelAfter(Progress):
    """Cancels the run once `epochs` epochs have finished (what a user's Cancel button does mid-training)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def _emit(self, done: int, total: int, message: str) -> None:
        if f"epoch {self.epochs}/" in message and "loss" in message:
            self.cancel()


def test_earmark_fit_resume_continues_a_cancelled_fit_at_the_next_epoch(toy_project, tmp_path):
    settings = {**SMALL, "epochs": "3"}
    with pytest.raises(Cancelled):  # Cancel pressed once the first epoch is done
        runs.fit(runs.Session(toy_project), "attr_classifier", settings, group=GROUP, progress=_CancelAfter(1))
    last = detector_workspace(toy_project.artifacts, "attr_classifier", GROUP) / LAST
    [cancelled_epoch] = json.loads(torch.load(last, weights_only=True)["history"])
    assert not results.latest_models(toy_project, "attr_classifier"), "no model from a cancelled fit"
    sets = [f"--set={k}={v}" for k, v in settings.items()]
    folder = toy_project.folder
    assert main(["fit", str(folder), "--detector", "attr_classifier", "--group", GROUP, "--resume", *sets]) == 0
    with Project.open(folder) as project:
        model = load_model(results.model_folder(project, results.latest_models(project, "attr_classifier")[GROUP]))
    assert model.info["resumed_from"] == 1
    assert [row["epoch"] for row in model.history] == [1, 2, 3]
    assert model.history[0] == cancelled_epoch, "epoch 1 is the cancelled fit's own, not trained again"
    whole = _detector(tmp_path, epochs="3")
    whole.fit(_clips(toy_project))
    assert model.info["steps"] == whole.info["steps"], "the optimiser went on at epoch 2, not again from 1"
    assert _same(model.network().state_dict(), whole.network().state_dict()), "as if never stopped"


def test_enrolled_target_clips_join_the_target_bank_without_retraining(toy_project, tmp_path):
    clips = _clips(toy_project)
    target = [c for c in clips if c.domain == "target" and c.split == "train"]
    detector = _detector(tmp_path, epochs="1")
    detector.fit([c for c in clips if c not in target])
    weights = {k: v.clone() for k, v in detector.network().state_dict().items()}
    banked = len(detector.banks.rows["target"])
    detector.enrol(target)
    assert len(detector.banks.rows["target"]) == banked + len(target)
    assert _same(detector.network().state_dict(), weights), "the network is not retrained"
    # An enrolled clip is its own nearest neighbour now: it scores 0 (cosine distance to itself).
    assert [d.score for d in detector.score(target)] == pytest.approx([0.0] * len(target), abs=1e-5)


def test_a_saved_model_scores_and_maps_as_it_did_and_the_map_tiles_the_clip(toy_project, tmp_path):
    detector = _detector(tmp_path, epochs="1", head="adacos")
    detector.fit(_clips(toy_project))
    test = _clips(toy_project, "test")
    before = detector.score(test)
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    after = loaded.score(test)
    for clip, a, b in zip(test, after, before, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-5, abs=1e-6) and a.decision == b.decision
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, rtol=1e-5, atol=1e-6)
        assert a.anomaly_map.shape[0] == 8, "64 mel bands in rows of 8"
        np.testing.assert_allclose(a.anomaly_map.mean(axis=0), a.frame_scores, rtol=1e-5)
        spans = a.map_time_spans_s
        assert spans[0, 0] == 0 and spans[-1, 1] <= clip.duration_s and np.all(spans[1:, 0] >= spans[:-1, 1] - 1e-9)
    # `earmark enrol` loads the saved model and enrols into it: the clips join its target bank
    target = [c for c in _clips(toy_project, "test") if c.domain == "target" and c.label == "normal"][:2]
    loaded.enrol(target)
    assert [d.score for d in loaded.score(target)] == pytest.approx([0.0, 0.0], abs=1e-5)


def test_the_margin_heads():
    """ArcFace's margin makes the true class harder to reach: the same cosines cost more with it than without;
    sub-cluster AdaCos sets its scale from the batch."""
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 8), torch.randint(0, 3, (16,))
    head = ArcFace(8, 3, margin=0.5, scale=16.0)
    plain = ArcFace(8, 3, margin=0.0, scale=16.0)
    plain.load_state_dict(head.state_dict())
    assert head.loss(head(embeddings), labels) > plain.loss(plain(embeddings), labels)
    ada = SubClusterAdaCos(8, 3, sub_clusters=2)
    before = float(ada.scale)
    ada.train()
    ada.loss_of(embeddings, labels)
    assert float(ada.scale) != before and torch.isfinite(ada.scale)


def test_ast_weights_set_up_are_fine_tuned_with_encoder_pretrained(toy_project, tmp_path):
    from transformers import ASTModel

    from engine import weights
    from tests.helpers import tiny_ast

    with pytest.raises(EarmarkError, match="no ast weights are set up.*earmark weights add ast"):
        _detector(tmp_path, encoder="pretrained").fit(_clips(toy_project))
    path = tiny_ast(tmp_path / "ast-tiny", layers=1)
    weights.add("ast", str(path))
    published = ASTModel.from_pretrained(path).state_dict()
    detector = _detector(tmp_path, encoder="pretrained", epochs="1", batch_size="4")
    clips = _clips(toy_project)
    detector.fit(clips[:6] + [c for c in clips if c.domain == "target"][:2])
    assert detector.info["encoder"] == "pretrained" and detector.info["weights"] == str(path)
    assert not _same(detector.network().encoder.model.state_dict(), published), "fine-tuned"
    [detection] = detector.score(_clips(toy_project, "test")[:1])
    assert detection.anomaly_map.shape[0] == 12, "the AST's grid: 12 rows at stride 10"
    assert detection.map_time_spans_s[-1, 1] <= 1.0, "the window's padding is not mapped"
    # A saved fine-tuned model holds its own architecture and weights: it loads without the weights set up.
    folder = detector.save(tmp_path / "model")
    weights.remove("ast")
    loaded = load_model(folder)
    assert loaded.score(_clips(toy_project, "test")[:1])[0].score == pytest.approx(detection.score, rel=1e-4)


def test_settings_are_checked():
    with pytest.raises(EarmarkError, match="encoder must be one of conv, pretrained"):
        make_config("attr_classifier", {"encoder": "beats"})
    with pytest.raises(EarmarkError, match="head must be one of arcface, adacos"):
        make_config("attr_classifier", {"head": "softmax"})
    with pytest.raises(EarmarkError, match="freeze must be one of encoder, head"):
        make_config("attr_classifier", {"freeze": "decoder"})
    with pytest.raises(EarmarkError, match="frequency_rows must be 0"):
        make_config("attr_classifier", {"frequency_rows": "-1"})


def test_the_fit_estimate_counts_the_epochs(toy_project):
    """Fit all warns with the estimate: twice the epochs, twice the training time (the scoring is the same)."""
    from engine.fit_estimate import estimate_fit

    clips = toy_project.clips()
    train_s = sum(c.duration_s for c in clips if c.split in ("train", "supplemental"))
    short = estimate_fit(clips, ["attr_classifier"], {"epochs": 10}, then_score=False)
    long = estimate_fit(clips, ["attr_classifier"], {"epochs": 20}, then_score=False)
    assert long.seconds == pytest.approx(2 * short.seconds)
    assert long.seconds == pytest.approx(detector_class("attr_classifier").fit_cost * train_s * 20)
    fine_tuning = estimate_fit(clips, ["attr_classifier"], {"encoder": "pretrained"}, then_score=False)
    assert fine_tuning.seconds > 100 * long.seconds, "fine-tuning the AST costs hours where the conv costs seconds"


def test_one_training_clip_learns_its_threshold_from_stretches_of_it_never_from_itself(toy_project, tmp_path):
    """A user's single recording: there is nothing to hold out, and a clip scored against itself scores 0 (a
    threshold of 0 flags every unseen normal clip). Each stretch of it is scored against the rest of it."""
    normals = [c for c in _clips(toy_project, "train") if c.domain == "source" and c.label == "normal"]
    unseen = [c for c in _clips(toy_project, "test") if c.label == "normal"] + normals[1:]
    detector = _detector(tmp_path, epochs="1", segment_frames="16")  # a 1 s clip: three segments
    detector.fit(normals[:1])
    [own] = detector.score(normals[:1])
    assert own.score == pytest.approx(0.0, abs=1e-5), "its patches find themselves"
    assert len(detector.held_out_scores) >= 2 and np.all(detector.held_out_scores > 0.01)
    assert np.mean([d.decision for d in detector.score(unseen)]) <= 0.5
    # A clip of one segment: each of its columns against its other columns, and the user is told.
    progress = RecordingProgress()
    detector = _detector(tmp_path, epochs="1")
    detector.fit(normals[:1], progress)
    assert any("the only training clip is one segment long" in line for line in progress.problems)
    assert np.all(detector.held_out_scores > 0.01) and detector.threshold > 0.01


def test_enrolling_into_the_saved_model_keeps_the_patches_the_fitted_one_keeps(toy_project, tmp_path):
    """`earmark enrol` loads the saved model: a full patch bank must keep the same share of the new clips'
    patches as enrolling straight after the fit does (the same scores afterwards)."""
    clips = _clips(toy_project)
    target = [c for c in clips if c.domain == "target" and c.split == "train"]
    detector = _detector(tmp_path, epochs="1", patch_bank_size="12")
    detector.fit([c for c in clips if c not in target])
    loaded = load_model(detector.save(tmp_path / "model"), cache=FeatureCache(tmp_path / "features"))
    for model in (detector, loaded):
        model.enrol(target)
    assert detector.patches.rows.shape[1] == 12
    assert torch.equal(detector.patches.rows, loaded.patches.rows)


def test_banks_learn_their_statistics_once_per_fit_and_enrol(toy_project, tmp_path, monkeypatch):
    from engine.detectors.attr_classifier import memory

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return leave_one_out_stats(*args, **kwargs)

    leave_one_out_stats = memory.leave_one_out_stats
    monkeypatch.setattr(memory, "leave_one_out_stats", counted)
    clips = _clips(toy_project)
    target = [c for c in clips if c.domain == "target" and c.split == "train"]
    detector = _detector(tmp_path, epochs="1", score="embedding", domain_norm="true")
    detector.fit([c for c in clips if c not in target])
    assert len(calls) <= 2, "once per bank, not once per clip"
    calls.clear()
    detector.enrol(target)
    detector.score(_clips(toy_project, "test"))
    assert len(calls) <= 2
    fresh = [
        leave_one_out_stats(
            detector.banks.rows[d],
            detector.banks.parents[d],
            detector.banks.rows[d],
            detector.banks.parents[d],
            1,
            "cosine",
        )
        for d in memory.DOMAINS
    ]
    assert list(detector.banks.stats.values()) == fresh


def test_the_map_of_a_long_clip_tiles_it_to_its_end(toy_project, tmp_path):
    from engine.data.clip import Clip
    from tests.helpers import write_hum

    detector = _detector(tmp_path, epochs="1", segment_frames="64")
    detector.fit(_clips(toy_project, "train"))
    path = write_hum(tmp_path / "long.wav", seconds=40.0)
    clip = Clip("long", str(path), 16000, 40.0, "fan", "00", "source", "test", "normal")
    [detection] = detector.score([clip])
    spans = detection.map_time_spans_s
    assert spans[0, 0] == 0 and spans[-1, 1] == pytest.approx(40.0)
    np.testing.assert_allclose(spans[1:, 0], spans[:-1, 1], atol=1e-9, err_msg="no gap, no overlap")
