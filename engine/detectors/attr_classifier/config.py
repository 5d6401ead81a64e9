"""The settings of `attr_classifier` (see README.md in this folder for what each does and why the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.detectors.attr_classifier.model import HEADS
from engine.detectors.base import DetectorConfig
from engine.detectors.knn.bank import METRICS
from engine.detectors.metadata.segments import SegmentConfig
from engine.errors import EarmarkError

ENCODERS = ("conv", "pretrained")
CLASSES = ("joint", "tasks")
SCORES = ("embedding", "patches")
BRANCHES = ("encoder", "head")


@dataclass
class AttrClassifierConfig(DetectorConfig):
    #: The encoder: `conv`, the shared small conv encoder trained from scratch; `pretrained`, the AST set up
    #: with `earmark weights add ast`, fine-tuned (hours per group on a CPU).
    encoder: str = "conv"
    #: `arcface` (additive angular margin) or `adacos` (sub-cluster AdaCos: adaptive scale, no margin).
    head: str = "arcface"
    margin: float = 0.5
    scale: float = 30.0
    sub_clusters: int = 4
    #: `joint`: one class per section x attribute combination with >= min_class_clips clips (the product of
    #: every task); `tasks`: one head per metadata task, their losses summed. `joint` with fewer than two
    #: classes falls back to `tasks`; no task at all, to self-supervised pseudo-classes.
    classes: str = "joint"
    min_class_clips: int = 2
    #: Supplemental clips: clean-machine ones join training (classed by their own metadata, so their
    #: combinations are classes of their own; they join no bank); noise-only ones are mixed into a copy of
    #: every training segment (0.8 / 0.2 in power; the conv encoder's log-mel segments only).
    supplemental: bool = False
    #: Views per clip segment in the pseudo-class fallback (itself, time-shifted, pitch-shifted, mixed).
    pseudo_views: int = 4
    embedding_dim: int = 128
    #: The conv encoder's segment embedding: 0, the mean and max over the whole feature map; R > 0, over
    #: each of R frequency bands, side by side (which band holds what survives into the embedding).
    frequency_rows: int = 0
    #: The log-mel input: bands, and frames per segment (a segment starts every half segment).
    n_mels: int = 64
    segment_frames: int = 64
    #: The clip score: `patches`, the mean of the frame lane (each patch embedding's cosine distance to the
    #: nearest normal patch of its frequency row); `embedding`, the k-NN back-end on the clip embeddings
    #: (below). Chosen on the condition matrix: see README.
    score: str = "patches"
    #: The k-NN back-end: k nearest clips of each bank, cosine (or squared L2) distance, domain normalisation.
    k: int = 1
    distance: str = "cosine"
    domain_norm: bool = False
    #: Normal patch embeddings kept per frequency row for the frame lane and the map.
    patch_bank_size: int = 4096
    epochs: int = 20
    warm_up_epochs: int = 0
    freeze: str = ""
    batch_size: int = 32
    #: 0: 1e-3 for the conv encoder, 5e-5 when fine-tuning the AST.
    learning_rate: float = 0.0
    seed: int = 0
    #: This share of the normal training clips (at least one) is held out of training to learn the
    #: threshold; afterwards the held-out clips join the banks.
    held_out_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise EarmarkError(f"attr_classifier: encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        for name, value, allowed in (
            ("head", self.head, HEADS),
            ("classes", self.classes, CLASSES),
            ("score", self.score, SCORES),
            ("distance", self.distance, METRICS),
            ("freeze", self.freeze, ("", *BRANCHES)),
        ):
            if value not in allowed:
                raise EarmarkError(
                    f"attr_classifier: {name} must be one of {', '.join(a for a in allowed if a)}, not {value!r}"
                )
        if self.epochs < 1 or self.batch_size < 2 or self.warm_up_epochs < 0 or self.learning_rate < 0:
            raise EarmarkError(
                "attr_classifier: epochs >= 1, batch_size >= 2, warm_up_epochs >= 0 and learning_rate >= 0 are required"
            )
        if self.frequency_rows < 0:
            raise EarmarkError("attr_classifier: frequency_rows must be 0 (no bands) or more")
        if min(self.k, self.sub_clusters, self.pseudo_views, self.patch_bank_size, self.embedding_dim) < 1:
            raise EarmarkError(
                "attr_classifier: k, sub_clusters, pseudo_views, patch_bank_size and embedding_dim must be at least 1"
            )
        if self.n_mels < 8 or self.segment_frames < 8 or self.min_class_clips < 1:
            raise EarmarkError("attr_classifier: n_mels and segment_frames >= 8, min_class_clips >= 1 are required")
        if not 0.0 < self.held_out_fraction < 1.0 or self.margin < 0 or self.scale <= 0:
            raise EarmarkError(
                "attr_classifier: held_out_fraction must lie between 0 and 1, margin be >= 0 and scale > 0"
            )

    @property
    def segments(self) -> SegmentConfig:
        return SegmentConfig(n_mels=self.n_mels, frames=self.segment_frames)
