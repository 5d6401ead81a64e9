"""`meta_proto`'s settings (see README.md in this folder for what each does and how its default was chosen)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.detectors.base import DetectorConfig
from engine.detectors.meta_proto.memory import PROTOTYPES, SCORES, SUPPORTS
from engine.detectors.metadata import SegmentConfig
from engine.errors import EarmarkError

BRANCHES = ("encoder", "head")


@dataclass
class MetaProtoConfig(DetectorConfig):
    #: The log-mel segments: mel bands, frames per segment (hop 512 samples at 16 kHz: 64 frames ~ 2 s).
    n_mels: int = 64
    segment_frames: int = 64
    #: The embedding's size, and how many frequency bands of the feature map it keeps apart (0: one).
    dim: int = 128
    frequency_rows: int = 8
    #: Episodes: N classes (ways) of one task, K support segments (shots) and Q queries per class.
    ways: int = 5
    shots: int = 3
    queries: int = 3
    #: The episodes draw from at most this many segments of each training clip (chosen with the seed; 0: all),
    #: so a fit on long recordings keeps a bounded set of items and views in memory.
    segments_per_clip: int = 16
    #: Episodes per epoch (each one optimiser step; with reptile, one outer step).
    episodes: int = 40
    epochs: int = 5
    learning_rate: float = 1e-3
    #: Reptile: each outer step adapts a copy of the encoder to one task in `inner_steps` ProtoNet steps
    #: (Adam at learning_rate), then moves the weights meta_step of the way to the adapted ones.
    reptile: bool = False
    inner_steps: int = 3
    meta_step: float = 0.5
    #: A metadata class needs this many training clips to be part of a task.
    min_class_clips: int = 2
    #: The domain (source / target) is a task too.
    domain_task: bool = True
    #: Add the self-supervised pseudo-classes (each clip its own class of its shifted and mixed views) as a
    #: task beside the metadata's (they are used alone whenever no metadata task is found).
    pseudo_classes: bool = True
    #: Prototypes per domain: each normal clip's mean embedding ("clip"), or each metadata class's ("class").
    prototypes: str = "clip"
    #: The clip score: "distance" to the nearest prototype, or "nll" under the prototypes.
    score: str = "distance"
    #: Whose prototypes and patches a clip is measured against: both domains' ("both"), or its own domain's.
    support: str = "both"
    #: Distances in units of each embedding dimension's spread over the normal clips (and the patches').
    standardise: bool = False
    #: Each domain's scores divided by its normal clips' typical left-out score.
    domain_norm: bool = True
    #: The score adds this times the patch term: the mean of the frame lane's mean and maximum.
    patch_weight: float = 4.0
    #: ProtoNet steps on the target domain's normal training clips after training (0: prototypes only).
    adapt_steps: int = 0
    #: Patch columns kept for the anomaly map.
    patch_bank: int = 4096
    #: The encoder stays frozen for this many first epochs; a branch (encoder or head) frozen for the run.
    warm_up_epochs: int = 0
    freeze: str = ""
    seed: int = 0
    #: This share of the normal training clips (at least one) is held out of training to learn the threshold.
    held_out_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.prototypes not in PROTOTYPES or self.score not in SCORES or self.support not in SUPPORTS:
            raise EarmarkError(
                f"meta_proto: prototypes must be one of {', '.join(PROTOTYPES)}, score one of {', '.join(SCORES)} "
                f"and support one of {', '.join(SUPPORTS)}, not {self.prototypes!r} / {self.score!r} / {self.support!r}"
            )
        if self.freeze not in ("", *BRANCHES):
            raise EarmarkError(
                f"meta_proto: freeze must be one of {', '.join(BRANCHES)} (or empty), not {self.freeze!r}"
            )
        if min(self.ways - 1, self.shots, self.queries, self.episodes, self.epochs, self.inner_steps, self.dim) < 1:
            raise EarmarkError(
                "meta_proto: ways >= 2, and shots, queries, episodes, epochs, inner_steps and dim >= 1 are required"
            )
        if self.n_mels < 8 or self.segment_frames < 8 or self.learning_rate <= 0 or not 0 < self.meta_step <= 1:
            raise EarmarkError(
                "meta_proto: n_mels and segment_frames >= 8, learning_rate > 0 and 0 < meta_step <= 1 are required"
            )
        if (
            not 0.0 < self.held_out_fraction < 1.0
            or self.min_class_clips < 1
            or min(self.adapt_steps, self.segments_per_clip) < 0
        ):
            raise EarmarkError(
                "meta_proto: held_out_fraction must lie between 0 and 1, min_class_clips >= 1, adapt_steps and "
                "segments_per_clip >= 0"
            )

    @property
    def segments(self) -> SegmentConfig:
        return SegmentConfig(n_mels=self.n_mels, frames=self.segment_frames)
