"""The trained leak classifier as a detector of the project: `leak_binary` and `leak_multiclass`.

Scoring a clip slides the short segment over it (half a segment apart), so its frame-score lane is the leak
probability over time; the clip's score is the share of its long segments whose mean probability reaches the
threshold, and its decision is the file-level vote (LEAK when at least half of them do). The frame threshold
is the segment threshold, so the labelling flow proposes LEAK stretches from the lane like any detector's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.base import Detection, Detector, DetectorConfig, Learning
from engine.detectors.leak.model import LeakCNN, leak_probabilities
from engine.detectors.leak.segments import LEAK, LeakJudging, classes_for, cut_segments
from engine.detectors.leak.voting import long_segment_means, vote_fraction
from engine.files import write_text_atomic
from engine.jobs import Progress

#: The training's record, saved beside the weights (not read back; its per-epoch `history` is saved as every
#: trained detector's is, by `Detector.save`).
META = "model_meta.json"


@dataclass
class LeakDetectorConfig(DetectorConfig, LeakJudging):
    mode: str = "binary"
    #: Proposals from the lane: LEAK stretches closer than this merge, shorter ones are dropped.
    merge_gap_s: float = 0.5
    min_region_s: float = 0.25


class LeakDetector(Detector):
    """Scores with a LeakCNN trained by `engine.classifiers.leak` (`earmark train leak`); see README.md."""

    learning = Learning.SUPERVISED
    #: What its proposals are labelled (an anomaly detector's are "anomaly", `registry.finding_label`).
    finding = LEAK
    Config = LeakDetectorConfig
    config: LeakDetectorConfig
    mode = "binary"

    def __init__(self, config: LeakDetectorConfig | None = None, **kwargs) -> None:
        super().__init__(config or LeakDetectorConfig(mode=self.mode), **kwargs)
        self.names = classes_for(self.config.mode)
        self.model = LeakCNN(len(self.names), aux_head=self.config.mode == "multiclass").to(self.device).eval()
        self.mean = torch.zeros(self.config.segments.n_mels, 1)
        self.std = torch.ones(self.config.segments.n_mels, 1)
        #: The training's model_meta.json, saved beside the weights (not read back); `history`, its epoch rows,
        #: is the base's.
        self.meta: dict = {}

    @classmethod
    def how_to_train(cls) -> str:
        return f"run `earmark train leak PROJECT --mode {cls.mode}` (or Train > Train leak classifier)"

    def _decide(self, score: float) -> bool:
        return bool(score >= self.config.vote_fraction)

    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        settings = self.config.segments
        features = self.cache.features(clips, settings.features, progress)
        seconds_per_frame = settings.hop_length / settings.sample_rate
        detections = []
        for clip in clips:
            mel = features.get(clip.clip_id)
            if mel is None:
                continue
            starts, segments, long_ids = cut_segments(
                mel, 0, mel.shape[1], settings, stride=max(1, settings.segment_frames // 2)
            )
            if not len(starts):
                progress.problem(
                    f"{clip.clip_id}: skipped, shorter than one leak segment "
                    f"({settings.segment_frames * seconds_per_frame:.2f} s)"
                )
                continue
            inputs = ((torch.from_numpy(segments) - self.mean) / self.std)[:, None]
            probabilities, _ = leak_probabilities(self.model, inputs, self.names.index(LEAK), self.device)
            score = vote_fraction(long_segment_means(probabilities, long_ids), self.config.threshold)
            centres = (starts + settings.segment_frames / 2) * seconds_per_frame
            detections.append(Detection(clip.clip_id, score, False, probabilities.astype(np.float32), centres))
            progress.check()
        return detections

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            **{f"model.{k}": v for k, v in self.model.state_dict().items()},
            "input.mean": self.mean,
            "input.std": self.std,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model.to(self.device).eval()
        self.mean, self.std = state["input.mean"].float(), state["input.std"].float()

    def save(self, folder: str | Path) -> Path:
        folder = super().save(folder)
        if self.meta:
            write_text_atomic(folder / META, json.dumps(self.meta, indent=2))
        return folder


class BinaryLeakDetector(LeakDetector):
    key = "leak_binary"
    title = "Leak classifier (LEAK / NOLEAK)"
    mode = "binary"


class MulticlassLeakDetector(LeakDetector):
    key = "leak_multiclass"
    title = "Leak classifier (5 classes)"
    mode = "multiclass"


def detector_for(config: LeakJudging, model: LeakCNN, meta: dict, history: list[dict]) -> LeakDetector:
    """The detector holding a trained model, its input normalisation, its thresholds and its training record."""
    klass = BinaryLeakDetector if meta["mode"] == "binary" else MulticlassLeakDetector
    detector = klass(LeakDetectorConfig(mode=meta["mode"], **config.judging()), device=torch.device("cpu"))
    detector.model.load_state_dict(model.state_dict())
    detector.mean = torch.tensor(meta["input_mean"], dtype=torch.float32)[:, None]
    detector.std = torch.tensor(meta["input_std"], dtype=torch.float32)[:, None]
    detector.threshold = config.vote_fraction
    detector.frame_threshold = config.threshold
    detector.info = {
        "best_file_leak_f1": meta["best_file_leak_f1"],
        "best_epoch": meta["best_epoch"],
        "classes": json.dumps(meta["class_names"]),
    }
    detector.meta, detector.history = meta, history
    return detector
