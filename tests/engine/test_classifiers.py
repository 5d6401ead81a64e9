"""The supervised classifiers, as a technician and an analyst use them: a leak set made by the project's own
generator, imported with its labels, trained in each mode for a few epochs, resumed from its checkpoint after
a cancel, and judged per file by voting worked out by hand; the sound classifier trained with grouped
augmentation, and a leaky split refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.classifiers import leak as leak_training
from engine.classifiers.leak import leak_config, train_and_score, train_leak
from engine.classifiers.sound import sound_config, train_sound
from engine.classifiers.splits import LeakageError, Split, audit, grouped_split, split_by_value
from engine.data.importers import import_source
from engine.data.leak_toy import generate_leaks, generate_sounds
from engine.detectors import runs
from engine.detectors.leak.voting import file_is_leak, judge_files, long_segment_means, vote_fraction
from engine.detectors.runs import Session
from engine.errors import EarmarkError
from engine.jobs import Cancelled
from engine.labels.exchange import import_labels
from engine.store import Project, labels, results
from engine.store.labels import Region
from tests.helpers import StopAfter

FEW = {"epochs": 3, "patience": 15, "batch_size": 128}


@pytest.fixture(scope="module")
def leak_set(tmp_path_factory):
    return generate_leaks(tmp_path_factory.mktemp("leaks"), files_per_class=4, duration_s=4.0, seed=2)


@pytest.fixture
def leak_project(tmp_path, leak_set):
    with Project.create(tmp_path / "leaks") as project:
        import_source(project, leak_set)
        import_labels(project, [leak_set / "labels.csv"])
        yield project


# -- file-level voting, by hand ---------------------------------------------------------------------------
def test_long_segments_average_their_short_segments():
    assert long_segment_means([0.2, 0.4, 0.9, 0.7, 0.1], [0, 0, 1, 1, 2]).tolist() == pytest.approx([0.3, 0.8, 0.1])


def test_a_file_is_leak_when_at_least_half_of_its_long_segments_pass():
    assert file_is_leak([0.6, 0.4]) is True  # one of two: exactly half
    assert file_is_leak([0.6, 0.4, 0.3]) is False  # one of three
    assert file_is_leak([0.5, 0.5, 0.1, 0.1]) is True  # reaching the threshold passes
    assert file_is_leak([0.49, 0.49]) is False
    assert file_is_leak([]) is False
    assert vote_fraction([0.9, 0.2, 0.7, 0.1], threshold=0.6) == 0.5


def test_file_level_f1_from_segment_probabilities():
    # a: long segments 0.8 and 0.3 -> leak (half); b: 0.2 and 0.1 -> not; c: 0.9 -> leak; d: 0.45 -> not.
    probabilities = [0.9, 0.7, 0.4, 0.2, 0.3, 0.1, 0.1, 0.9, 0.5, 0.4]
    files = ["a", "a", "a", "a", "b", "b", "b", "c", "d", "d"]
    long_ids = [0, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    judged = judge_files(probabilities, files, long_ids, {"a": True, "b": False, "c": False, "d": True})
    assert judged.decisions == {"a": True, "b": False, "c": True, "d": False}
    assert (judged.precision, judged.recall, judged.accuracy) == (0.5, 0.5, 0.5)
    assert judged.f1 == pytest.approx(0.5)


# -- training the leak detector ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_each_mode_trains_from_labelled_regions_and_scores_clips(leak_project, mode):
    trained = train_leak(Session(leak_project), leak_config(mode, FEW))
    folder = trained.folder
    assert folder.name == f"leak_{mode}"
    assert (folder / "best.safetensors").is_file() and (folder / "checkpoints" / "last.pt").is_file()
    assert sorted(p.name for p in (folder / "checkpoints").glob("epoch_*.pt")) == [
        "epoch_001.pt",
        "epoch_002.pt",
        "epoch_003.pt",
    ]
    meta = json.loads((folder / "model_meta.json").read_text())
    assert meta["mode"] == mode and meta["binary_mode"] == (mode == "binary")
    assert meta["class_names"] == (
        ["NOLEAK", "LEAK"] if mode == "binary" else ["LEAK", "NORMAL", "QUIET", "RANDOM", "MECHANICAL"]
    )
    assert meta["leak_idx"] == 0 and meta["leak_class_name"] == "LEAK"
    history = json.loads((folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert meta["best_file_leak_f1"] == max(row["file_leak_f1"] for row in history)
    assert meta["best_epoch"] == next(r["epoch"] for r in history if r["file_leak_f1"] == meta["best_file_leak_f1"])
    assert meta["validation_files"] == 5  # the project's test split: one file per class
    assert meta["eval_method"].startswith("file_level") and meta["trainer_cfg"]["epochs"] == 3
    # The model is the project's detector for every group: its lane is the leak probability.
    assert trained.model.detector == f"leak_{mode}" and trained.model.group_key == results.ALL_GROUPS
    run = runs.score(runs.Session(leak_project), f"leak_{mode}", None)
    assert run.scored == 20
    for detection in run.detections:
        assert ((detection.frame_scores >= 0) & (detection.frame_scores <= 1)).all()
        assert detection.decision == (detection.score >= 0.5)


def test_training_resumes_from_last_at_the_next_epoch(leak_project):
    config = leak_config("binary", {**FEW, "epochs": 4})

    with pytest.raises(Cancelled):
        train_leak(Session(leak_project), config, StopAfter("epoch 2/4:"))
    folder = leak_training.workspace(leak_project, "binary")
    stopped = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert stopped["epoch"] == 2 and not stopped["finished"]
    assert not results.fitted_detectors(leak_project)  # a cancelled training registers no model
    steps_per_epoch = int(stopped["optimiser"]["state"][0]["step"]) // 2

    resumed = train_leak(Session(leak_project), config, resume=True)
    assert resumed.outcome.resumed_from == 2 and resumed.outcome.last_epoch == 4
    history = resumed.outcome.history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[:2] == json.loads(stopped["history"])  # the first two epochs are the stopped run's
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    # The optimiser went on from where it stopped (4 epochs of steps, not 2): resumed, not restarted.
    assert int(last["optimiser"]["state"][0]["step"]) == 4 * steps_per_epoch
    assert sorted(p.name for p in (folder / "checkpoints").glob("epoch_*.pt")) == [
        "epoch_002.pt",
        "epoch_003.pt",
        "epoch_004.pt",
    ]  # rolling: the newest three
    with pytest.raises(EarmarkError, match="already finished at epoch 4"):
        train_leak(Session(leak_project), config, resume=True)


def test_resume_refuses_when_the_labels_changed(leak_project):
    config = leak_config("binary", {**FEW, "epochs": 5})
    with pytest.raises(Cancelled):
        train_leak(Session(leak_project), config, StopAfter("epoch 1/5:"))
    labels.add_region(leak_project, Region("leak_001", 0.5, 2.0, "NORMAL", "manual"))
    with pytest.raises(EarmarkError, match="changed since the checkpoint"):
        train_leak(Session(leak_project), config, resume=True)


def test_a_damaged_checkpoint_is_named_and_the_labels_stay(leak_project):
    config = leak_config("binary", {**FEW, "epochs": 5})
    with pytest.raises(Cancelled):
        train_leak(Session(leak_project), config, StopAfter("epoch 1/5:"))
    last = leak_training.workspace(leak_project, "binary") / "checkpoints" / "last.pt"
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(EarmarkError, match="damaged or was not written by Earmark") as raised:
        train_leak(Session(leak_project), config, resume=True)
    assert "weights_only" not in str(raised.value)  # torch's advice to load unsafely is not passed on
    assert len(labels.regions(leak_project, kinds=("manual",))) == 20


def test_train_both_writes_two_folders_and_two_detectors(leak_project):
    trained, _ = train_and_score(Session(leak_project), ["both"], {"epochs": "2"}, score=False)
    assert [t.mode for t in trained] == ["binary", "multiclass"]
    assert {t.folder.name for t in trained} == {"leak_binary", "leak_multiclass"}
    assert set(results.fitted_detectors(leak_project)) == {"leak_binary", "leak_multiclass"}


def test_bad_training_data_gives_a_clear_error_and_keeps_the_labels(tmp_path, leak_set):
    with Project.create(tmp_path / "p") as project:
        import_source(project, leak_set)
        with pytest.raises(EarmarkError, match="no labelled regions"):
            train_leak(Session(project), leak_config("binary", FEW))
        labels.add_region(project, Region("normal_000", 0, 4, "NORMAL", "manual"))
        labels.add_region(project, Region("quiet_000", 0, 4, "QUIET", "manual"))
        with pytest.raises(EarmarkError, match="both kinds"):
            train_leak(Session(project), leak_config("binary", FEW))
        assert len(labels.regions(project, kinds=("manual",))) == 2
        with pytest.raises(EarmarkError, match="has no setting 'epoch'"):
            leak_config("binary", {"epoch": "3"})
        with pytest.raises(EarmarkError, match="trained from labelled regions"):
            runs.fit(runs.Session(project), "leak_binary")


def test_segments_are_cached(leak_project, monkeypatch):
    train_leak(Session(leak_project), leak_config("binary", {"epochs": 1}))
    assert list((leak_project.artifacts / "classifiers" / "segments").glob("*.npz"))
    monkeypatch.setattr(
        "engine.audio.feature_cache.FeatureCache.features", lambda *a, **k: pytest.fail("features computed again")
    )
    train_leak(Session(leak_project), leak_config("binary", {"epochs": 1}))


# -- splits and the leakage audit ---------------------------------------------------------------------------
def test_the_audit_rejects_a_split_with_one_clip_on_both_sides():
    groups = ["a", "a", "a", "b", "b", "b"]  # clip a and its two variants, clip b and its two
    leaky = Split(train=[0, 1, 3, 4], validation=[2, 5])  # split by variant, not by clip
    with pytest.raises(LeakageError, match="2 source clip"):
        audit(leaky, groups)
    assert audit(Split([0, 1, 2], [3, 4, 5]), groups).validation == [3, 4, 5]


def test_grouped_split_keeps_groups_whole_and_stratifies():
    groups = [f"clip{i // 3}" for i in range(60)]  # 20 clips x 3 variants
    labels_ = ["dog" if i // 3 < 10 else "cat" for i in range(60)]
    split = grouped_split(groups, labels_, 0.2, seed=4)
    train, validation = split.groups(groups)
    assert not train & validation and len(validation) == 4
    assert sorted(labels_[i] for i in split.validation).count("dog") == 6  # two dog clips, three variants each
    with pytest.raises(LeakageError):
        split_by_value(groups, [str(i % 2) for i in range(60)], "1")  # alternating variants: leaky


# -- the sound classifier -----------------------------------------------------------------------------------
def test_sound_classifier_trains_over_seeds_with_grouped_augmentation(tmp_path):
    source = generate_sounds(tmp_path / "sounds", clips_per_class=5, duration_s=1.0, seed=1)
    with Project.create(tmp_path / "p") as project:
        report = import_source(project, source)
        assert report.format == "esc50" and report.added == 25
        trained = train_sound(
            Session(project),
            sound_config(
                {
                    "epochs": "2",
                    "seeds": "0,1",
                    "clip_seconds": "1",
                    "architecture": "resnet",
                    "attention": "cbam",
                    "augment": "noise,gain",
                }
            ),
        )
    summary = json.loads((trained.folder / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["runs"]) == 2
    assert summary["split"] == "fold 1 held out" and summary["leakage_audit"] == "passed"
    assert summary["validation_clips"] == 5 and summary["train_items"] == 20 * 3  # originals + two variants
    assert summary["accuracy_mean"] == pytest.approx(np.mean([r["accuracy"] for r in summary["runs"]]))
    for run in summary["runs"]:
        assert np.array(run["confusion"]).sum() == 5 and len(run["per_class_recall"]) == 5
        history = json.loads((trained.folder / f"seed_{run['seed']}" / "history.json").read_text())
        assert [row["epoch"] for row in history] == [1, 2]
        assert {"train_loss", "val_loss", "accuracy", "macro_f1"} <= set(history[0])


def test_sound_classifier_needs_classes(toy_project):
    with pytest.raises(EarmarkError, match="no clip has a class"):
        train_sound(Session(toy_project), sound_config({"epochs": "1"}))
