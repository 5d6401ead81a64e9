"""The clips' metadata as auxiliary tasks, as the metadata detectors' fit report shows them: the synthetic set's
section, speed, load, microphone and noise columns become tasks where they have two classes with enough
clips, the rest are dropped with the reason; with none left, pseudo-classes of each clip's own views. Also the
training loop's plain SGD (the Reptile outer step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.audio.feature_cache import FeatureCache
from engine.data.clip import Clip
from engine.detectors.metadata import (
    ConvEmbedding,
    SegmentConfig,
    clip_segments,
    joint_classes,
    metadata_tasks,
    pseudo_views,
)
from engine.detectors.metadata.segments import band_spans_hz, column_spans_s
from engine.detectors.metadata.tasks import fallback_report
from engine.errors import EarmarkError
from engine.jobs import RecordingProgress
from engine.training import LoopConfig, Trainer


def _clip(i: int, section: str = "00", domain: str = "source", **attributes) -> Clip:
    return Clip(f"c{i}", f"/x/c{i}.wav", 16000, 1.0, "fan", section, domain, "train", "normal", attributes)


def test_columns_with_two_classes_of_enough_clips_are_tasks_and_the_rest_are_dropped_with_the_reason():
    clips = [
        _clip(0, speed="1", noise="n01", mic="0"),
        _clip(1, speed="1", noise="n01", mic="0"),
        _clip(2, speed="2", noise="n02", mic="0"),
        _clip(3, speed="2", noise="n03", mic="0"),
        _clip(4, domain="target", speed="3", noise="n04", mic="0"),
        _clip(5, domain="target", noise="n05", mic="0"),
    ]
    kept, dropped = metadata_tasks(clips)
    assert [t.name for t in kept] == ["domain", "speed"]
    domain, speed = kept
    assert domain.classes == ["source", "target"] and domain.labels.tolist() == [0, 0, 0, 0, 1, 1]
    # speed 3 has one clip and clip 5 has no speed: neither takes part
    assert speed.classes == ["1", "2"] and speed.labels.tolist() == [0, 0, 1, 1, -1, -1]
    assert dropped == [
        "mic: one class (0)",
        "noise: 1 class with >= 2 clips (n01); 4 classes have fewer",
        "section: one class (00): one section per model group",
    ]
    assert [t.name for t in metadata_tasks(clips, use_domain=False)[0]] == ["speed"]
    assert metadata_tasks(clips, min_clips=3)[0] == [], "2 target clips and 2 of each speed are too few"


def test_the_joint_classes_are_the_product_of_the_tasks_without_the_domain():
    clips = [_clip(i, section=str(i % 2), load=str(i // 4)) for i in range(8)] + [_clip(8, section="0")]
    tasks, _ = metadata_tasks(clips)
    joint = joint_classes(tasks, 2)
    assert joint.name == "joint"
    assert joint.classes == ["load=0|section=0", "load=0|section=1", "load=1|section=0", "load=1|section=1"]
    # the last clip has no load: its tuple (load=?, section=0) has one clip, too few
    assert joint.labels.tolist() == [0, 1, 0, 1, 2, 3, 2, 3, -1]


def test_the_synthetic_sets_metadata_gives_tasks_for_speed_load_microphone_and_noise(toy_project):
    clips = [c for c in toy_project.clips() if c.group == "fan/section_00" and c.split == "train"]
    kept, dropped = metadata_tasks(clips)
    names = {t.name for t in kept}
    assert "domain" in names and names & {"speed_level", "load_level", "mic_position_id", "noise_id"}
    assert any(line.startswith("section: one class") for line in dropped)
    for task in kept:
        assert len(task.labels) == len(clips) and len(task.classes) >= 2
        assert all(np.sum(task.labels == k) >= 2 for k in range(len(task.classes)))


def test_without_metadata_each_clip_is_its_own_class_of_its_shifted_and_mixed_views():
    clips = [Clip(f"c{i}", f"/x/c{i}.wav", 16000, 1.0) for i in range(3)]
    kept, dropped = metadata_tasks(clips)
    assert kept == [] and dropped == ["domain: no clip has a value", "section: no clip has a value"]
    assert "trained on self-supervised pseudo-classes (3 clips x 4 views)" in fallback_report(dropped, 3)
    segments = torch.randn(3, 1, 16, 32) * 10 - 40
    views, labels = pseudo_views(segments, torch.Generator().manual_seed(0))
    assert views.shape == (12, 1, 16, 32) and labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    first = views[:4]
    assert torch.equal(first[0], segments[0])
    assert any(torch.equal(first[1], torch.roll(segments[0], s, dims=2)) for s in range(4, 17)), "time shift"
    assert (
        torch.equal(first[2][:, 2:-2], torch.roll(segments[0], 1, 1)[:, 2:-2])
        or torch.equal(first[2][:, 2:-2], torch.roll(segments[0], -1, 1)[:, 2:-2])
        or any(torch.equal(first[2][:, 3:-3], torch.roll(segments[0], s, 1)[:, 3:-3]) for s in (-2, 2))
    ), "pitch"
    assert not torch.equal(first[3], segments[0]) and (first[3] >= segments[0] + 10 * np.log10(0.8) - 1e-4).all()
    again, _ = pseudo_views(segments, torch.Generator().manual_seed(0))
    assert torch.equal(views, again), "the same generator gives the same views"


def test_clips_are_cut_into_segments_that_the_encoder_maps_onto_the_spectrogram(toy_project, tmp_path):
    clips = [c for c in toy_project.clips() if c.split == "train"][:2]
    config = SegmentConfig(n_mels=32, frames=16)
    progress = RecordingProgress()
    found = clip_segments(FeatureCache(tmp_path / "features"), clips, config, progress)
    assert set(found) == {c.clip_id for c in clips} and not progress.problems
    one = found[clips[0].clip_id]
    assert one.segments.shape[1:] == (1, 32, 16) and len(one.segments) == len(one.time_spans_s) >= 3
    assert one.time_spans_s[-1, 1] == pytest.approx(one.end_s) and np.all(np.diff(one.time_spans_s[:, 0]) > 0)
    model = ConvEmbedding(dim=24).eval()
    with torch.no_grad():
        fmap = model.feature_map(one.segments)
        assert model(one.segments).shape == (len(one.segments), 24)
    assert fmap.shape[2:] == ConvEmbedding.grid(32, 16) == (4, 2)
    bands = band_spans_hz(config, 4)
    assert bands.shape == (4, 2) and bands[0, 0] == 0 and np.all(bands[:, 0] < bands[:, 1])
    # a short clip's repeated segment: only the columns that start before the clip ends
    assert column_spans_s(np.array([0.0, 2.0]), 8, end_s=0.6).tolist() == [[0.0, 0.25], [0.25, 0.5], [0.5, 0.6]]


def test_plain_sgd_steps_by_the_learning_rate_times_the_gradient(tmp_path):
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    target = torch.tensor([[0.0, 0.0, 0.0]])

    def half_distance(outputs, targets):  # gradient: weight - target
        return 0.5 * (model.weight - target).pow(2).sum() + 0 * outputs.sum()

    config = LoopConfig(epochs=1, patience=5, batch_size=2, learning_rate=0.25, optimiser="sgd")
    trainer = Trainer(model, tmp_path, config, torch.device("cpu"), half_distance, None, "", "s", min_batch=1)
    trainer.run(torch.zeros(1, 3), {}, RecordingProgress())
    # one step: w - 0.25 * (w - 0) = 0.75 w (AdamW would have moved every weight by about the rate)
    assert model.weight.detach().tolist() == [[0.75, 1.5, 2.25]]
    with pytest.raises(EarmarkError, match="optimiser must be one of adamw, sgd"):
        LoopConfig(optimiser="adam").check("test")
