"""The detector contract: one base class fixes the pipeline, every detector returns the same `Detection`.

A detector is fitted per model group (machine type + section) on that group's normal training clips,
learns its decision threshold from scores of those clips that did not see themselves (left out of a memory
bank, or held out of a trained model's fold: a clip scored by a model that knows it scores far lower than an
unseen normal does), fits a gamma distribution to them and takes its 90th percentile by default, as the
DCASE baseline does; it saves its state as safetensors plus a JSON file. Subclasses implement `_fit`,
`_enrol`, `_detect` and the tensor state.

The same held-out scores put every detector's scores on one scale: `Detection.normalised` is the clip's score
as a z-score against the held-out scores of its domain (see `engine.detectors.normalisation`, which says why
a z-score and not the median and MAD).
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache
from engine.data.clip import Clip
from engine.data.detection import Detection
from engine.detectors.min_duration import long_enough
from engine.detectors.normalisation import domain_stats, normalised_frames, normalised_score, score_stats
from engine.detectors.thresholds import gamma_threshold
from engine.device import pick_device
from engine.errors import ArtifactError, EarmarkError
from engine.files import read_rows, save_safetensors_atomic, write_text_atomic
from engine.jobs import Progress

STATE_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
HISTORY_FILE = "history.json"
#: A group fitted on fewer normal clips than this gets a warning: its threshold rests on a handful of scores.
FEW_NORMALS = 10


class Learning(Enum):
    """How a detector learns."""

    #: Fitted per group on that group's normal clips only (`earmark fit`): an anomaly detector.
    ONE_CLASS = "one_class"
    #: Trained from labelled regions or clips (`earmark train ...`), then registered as a model that scores.
    SUPERVISED = "supervised"


@dataclass
class DetectorConfig:
    """Settings every detector has; subclasses add their own fields."""

    #: The decision threshold is this quantile of a gamma distribution fitted to training-normal scores.
    threshold_quantile: float = 0.9
    #: Frames above this quantile of training-normal frame scores form proposed regions.
    frame_quantile: float = 0.99
    #: Proposed regions closer than this are merged; shorter ones are dropped.
    merge_gap_s: float = 0.1
    min_region_s: float = 0.05


@dataclass
class TrainingScores:
    """Scores of training normals that did not see themselves (left out or held out), as an unseen normal
    clip would score: what thresholds are learnt from."""

    clip_scores: np.ndarray
    frame_scores: np.ndarray
    #: The training clips whose scores `clip_scores` are, in the same order (None: not known).
    clip_ids: list[str] | None = None


class Detector(ABC):
    """Base of every detector. Use `fit`, `enrol`, `score`, `save`, and `engine.detectors.registry.load_model`
    to load a saved one."""

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Config: ClassVar[type[DetectorConfig]] = DetectorConfig
    #: How it learns: fitted on a group's normal clips (`fit`, `enrol`), or trained from labels elsewhere
    #: (`earmark train`; such a detector only scores, and `fit` / `enrol` refuse with `how_to_train`).
    learning: ClassVar[Learning] = Learning.ONE_CLASS
    #: Seconds of computing per second of training audio (per epoch for a detector that trains for epochs),
    #: measured as `engine.fit_estimate` says; this cautious default stands for a detector not measured.
    fit_cost: ClassVar[float] = 0.01
    #: Whether runs that fit every detector without naming them (the window's Fit all) and the ensemble's
    #: default members take it. A detector that trains a transformer per group sets False: it would multiply
    #: their time by hours per group on a CPU; it is still fitted by name (Fit with settings, `earmark fit
    #: --detector`, the ensemble's `members` setting).
    by_default: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # A detector fitted on normal clips must say how; one trained from labels has nothing to fit here.
        if (
            cls.key
            and cls.learning is Learning.ONE_CLASS
            and (cls._fit is Detector._fit or cls._enrol is Detector._enrol)
        ):
            raise TypeError(f"{cls.__name__} learns {cls.learning.value}: it must implement _fit and _enrol")

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        cache: FeatureCache | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.config = config if config is not None else self.Config()
        self.device = device or pick_device()
        self.cache = cache or FeatureCache(None, self.device)
        self.threshold: float | None = None
        self.frame_threshold: float | None = None
        self.info: dict[str, Any] = {}
        #: Held-out score of each training normal (and enrolled clip), and its domain; saved beside the model.
        self.held_out_by_clip: dict[str, float] = {}
        self.held_out_domains: dict[str, str | None] = {}
        #: Every clip the model was fitted on or enrolled, held out or not (a detector that holds out a share
        #: trained on the others): enrolling one again would count it twice. Saved beside the model.
        self.held_clips: list[str] = []
        #: Detectors that train in epochs: where (None: a temporary folder, removed afterwards), whether to
        #: continue from its `checkpoints/last.pt`, and the epoch rows of the training (saved as history.json).
        self.training_folder: Path | None = None
        self.resume = False
        self.history: list[dict] = []

    # -- the pipeline ---------------------------------------------------------------------------------
    def fit(self, clips: Sequence[Clip], progress: Progress | None = None) -> None:
        """Fit on one group's clips: its normal training clips (and supplemental clips, where used)."""
        if self.learning is not Learning.ONE_CLASS:
            raise EarmarkError(f"{self.key} is trained from labels, not fitted on normal clips: {self.how_to_train()}")
        progress = progress or Progress()
        clips = long_enough(self, clips, progress)
        normals = [c for c in clips if c.split == "train" and c.label != "anomaly"]
        if not normals:
            raise EarmarkError(
                f"{self.key}: no normal training clips to fit on; mark some with `earmark set "
                "PROJECT 'pump_*' --split train --label normal` (or Clip properties > Use as "
                "normal training clips) for this machine and section first"
            )
        supplemental = [c for c in clips if c.split == "supplemental"]
        self.held_out_by_clip, self.held_out_domains = {}, {}
        self.held_clips = [c.clip_id for c in normals]
        training = self._fit(normals, supplemental, progress)
        self._learn_thresholds(training)
        self._learn_normalisation(training, normals)
        self.info.update(
            trained_on=len(normals),
            source=sum(c.domain == "source" for c in normals),
            target=sum(c.domain == "target" for c in normals),
        )
        self.info.pop("warning", None)
        if len(normals) < FEW_NORMALS:
            self.info["warning"] = few_normals_warning(len(normals), len(training.clip_scores))

    def enrol(self, clips: Sequence[Clip], progress: Progress | None = None) -> None:
        """Add a few target-domain normal clips without refitting."""
        if self.learning is not Learning.ONE_CLASS:
            raise EarmarkError(
                f"{self.key} learns from labels, not by enrolment: label the clips and train it "
                f"again ({self.how_to_train()})"
            )
        self._require_fitted()
        progress = progress or Progress()
        # A clip the model already holds (fitted on it or enrolled before) would count twice in its memory and
        # its held-out scores, and the scores could no longer be told apart by clip.
        held = set(self.held_clips) | set(self.held_out_by_clip)  # a model saved before held_clips: the latter
        known = {c.clip_id for c in clips if c.clip_id in held}
        for clip_id in sorted(known):
            progress.problem(f"{clip_id}: not enrolled, the model already holds it")
        clips = [c for c in long_enough(self, clips, progress) if c.label != "anomaly" and c.clip_id not in known]
        if not clips:
            raise EarmarkError(
                f"{self.key}: nothing to enrol; choose normal clips of the target domain that the "
                "model does not hold yet"
            )
        training = self._enrol(clips, progress)
        self._learn_thresholds(training)
        self._learn_normalisation(training, clips)
        self.info["enrolled"] = int(self.info.get("enrolled", 0)) + len(clips)
        self.held_clips = list(dict.fromkeys([*self.held_clips, *(c.clip_id for c in clips)]))
        if "warning" in self.info:  # its counts change with the clips enrolled
            count = int(self.info.get("trained_on", 0)) + int(self.info["enrolled"])
            self.info.pop("warning")
            if count < FEW_NORMALS:
                self.info["warning"] = few_normals_warning(count, len(training.clip_scores))

    def score(self, clips: Sequence[Clip], progress: Progress | None = None) -> list[Detection]:
        """A `Detection` per readable clip; unreadable clips are reported through `progress.problem`."""
        self._require_fitted()
        progress = progress or Progress()
        detections = self._detect(long_enough(self, clips, progress), progress)
        domains = {c.clip_id: c.domain for c in clips}
        for detection in detections:
            detection.decision = self._decide(detection.score)
            detection.threshold, detection.frame_threshold = self.threshold, self.frame_threshold
            detection.normalised = normalised_score(
                detection.score, domains.get(detection.clip_id), self.info.get("normalisation")
            )
            if detection.decision and self.frame_threshold is not None:
                try:
                    detection.regions = propose_regions(
                        detection.frame_times, detection.frame_scores, self.frame_threshold, self.config
                    )
                except EarmarkError:  # a lane with nothing finite in it: the score stands without regions
                    detection.regions = []
        return detections

    # -- for subclasses ----------------------------------------------------------------------------------
    def _decide(self, score: float) -> bool:
        return bool(score > self.threshold)

    @classmethod
    def fit_seconds(cls, config: DetectorConfig, train_s: float) -> float:
        """Expected seconds to fit one group with `config` on `train_s` seconds of training audio."""
        return cls.fit_cost * train_s * max(int(getattr(config, "epochs", 1)), 1)

    @classmethod
    def how_to_train(cls) -> str:
        """What a user runs to train a detector that learns from labels (`learning` SUPERVISED)."""
        return "train it from the project's labels (`earmark train`)"

    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        """Fit on the normals; return their held-out scores. Every ONE_CLASS detector implements it."""
        raise NotImplementedError

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """Add the clips; return the training-normal scores as they now are (thresholds are re-learnt).
        Every ONE_CLASS detector implements it."""
        raise NotImplementedError

    @abstractmethod
    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        """Detections with score and frame scores; the base class sets decisions and regions."""

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    # -- thresholds ----------------------------------------------------------------------------------------
    def _learn_thresholds(self, training: TrainingScores) -> None:
        self.threshold = gamma_threshold(training.clip_scores, self.config.threshold_quantile)
        frames = training.frame_scores[np.isfinite(training.frame_scores)]
        if frames.size:  # no frame scores (an enrolment that keeps them) leaves the frame threshold as it was
            self.frame_threshold = float(np.quantile(frames, self.config.frame_quantile))

    def _learn_normalisation(self, training: TrainingScores, clips: Sequence[Clip]) -> None:
        """`held_out_by_clip` and the statistics normalised scores are measured against: per domain and
        pooled from the held-out clip scores, and from the held-out frame scores (kept as they were when
        there are none, as after an enrolment). A detector that does not say whose scores they are gets
        pooled statistics only."""
        self.held_out_domains.update({c.clip_id: c.domain for c in clips})
        ids = training.clip_ids
        if ids is not None and len(ids) == len(training.clip_scores):
            self.held_out_by_clip = {
                clip_id: float(score) for clip_id, score in zip(ids, training.clip_scores, strict=True)
            }
            self.info["normalisation"] = domain_stats(self.held_out_by_clip, self.held_out_domains)
        else:
            self.held_out_by_clip = {}
            pooled = score_stats(training.clip_scores)
            self.info["normalisation"] = {"all": pooled} if pooled else {}
        frames = score_stats(training.frame_scores)
        if frames is not None:
            self.info["frame_normalisation"] = frames[:2]

    def normalise_frames(self, values: np.ndarray) -> np.ndarray:
        """Frame scores, or an anomaly map in the same units, against the held-out frame scores (what
        normalised scores are for clips): comparable across detectors; NaN for a model without them."""
        return normalised_frames(values, self.info.get("frame_normalisation"))

    def earlier_held_out_ids(self, count: int) -> list[str] | None:
        """Whose the `count` held-out scores a detector kept from before are (for its enrolment), or None
        when that is not known (a model saved before clip ids were kept)."""
        ids = list(self.held_out_by_clip)
        return ids if len(ids) == count else None

    def _require_fitted(self) -> None:
        if self.threshold is None:
            raise EarmarkError(f"{self.key}: this detector has not been fitted; run `earmark fit` first")

    # -- saving ----------------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the weights (safetensors), `model.json` and, for a detector that trained in epochs,
        `history.json` (its epoch rows) into `folder`, each atomically."""
        self._require_fitted()
        folder = Path(folder)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        save_safetensors_atomic(folder / STATE_FILE, state)
        meta = {
            "detector": self.key,
            "config": dataclasses.asdict(self.config),
            "threshold": self.threshold,
            "frame_threshold": self.frame_threshold,
            "info": self.info,
            # a list, not a mapping: the keys of a mapping would be sorted on writing, and a detector's
            # enrolment pairs these ids with its own held-out arrays by position
            "held_out": [
                [clip_id, score, self.held_out_domains.get(clip_id)] for clip_id, score in self.held_out_by_clip.items()
            ],
            "held_clips": self.held_clips,
        }
        write_text_atomic(folder / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True))
        if self.history:  # the training curves, beside the model they made
            write_text_atomic(folder / HISTORY_FILE, json.dumps(self.history, indent=1))
        return folder

    @classmethod
    def from_saved(
        cls,
        folder: Path,
        meta: dict,
        state: dict[str, torch.Tensor],
        *,
        cache: FeatureCache | None = None,
        device: torch.device | None = None,
    ) -> Detector:
        """The detector that `read_saved(folder)` read (`engine.detectors.registry.load_model` picks the
        class by the key saved). Settings or weights that do not fit raise `ArtifactError`."""
        known = {f.name for f in dataclasses.fields(cls.Config)}
        try:
            detector = cls(
                cls.Config(**{k: v for k, v in meta["config"].items() if k in known}), cache=cache, device=device
            )
            detector.threshold = meta["threshold"]
            detector.frame_threshold = meta.get("frame_threshold")
            detector.info = meta.get("info", {})
            held_out = meta.get("held_out", [])  # none in a model saved before held-out scores were kept
            detector.held_out_by_clip = {clip_id: float(score) for clip_id, score, _ in held_out}
            detector.held_out_domains = {clip_id: domain for clip_id, _, domain in held_out}
            detector.held_clips = [str(clip_id) for clip_id in meta.get("held_clips", [])]
            detector.load_state_dict(state)
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # settings or weights that do not fit
            raise _damaged(folder, f"{type(exc).__name__}: {exc}") from None
        # The training curves stay with the model: an enrolled copy saves them again beside its own weights.
        # Unreadable curves leave the model usable without them.
        detector.history = read_rows(folder / HISTORY_FILE) or []
        return detector


def read_saved(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(`model.json`, weights) of the model `Detector.save` wrote into `folder`. Missing, truncated or
    inconsistent files raise `ArtifactError` naming the folder and saying to fit again (never a raw parser
    error)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        state = load_file(str(folder / STATE_FILE))
    except FileNotFoundError as exc:
        raise _damaged(folder, f"{Path(exc.filename or folder).name} is missing") from None
    except (OSError, ValueError, SafetensorError) as exc:
        raise _damaged(folder, f"{type(exc).__name__}: {exc}") from None
    missing = [
        key
        for key, kind in (("detector", str), ("config", dict), ("threshold", (int, float)))
        if not isinstance(meta.get(key) if isinstance(meta, dict) else None, kind)
    ]
    if missing:
        raise _damaged(folder, f"{CONFIG_FILE} has no valid {', '.join(repr(m) for m in missing)}")
    return meta, state


def _damaged(folder: Path, reason: str) -> ArtifactError:
    return ArtifactError(f"the model in {folder} is damaged: {reason}; fit the detector again")


def few_normals_warning(count: int, held_out: int) -> str:
    """What a user is told about a group fitted on fewer than `FEW_NORMALS` normal clips, whose threshold
    was learnt from `held_out` scores of clips the model did not see (all of them when each was left out in
    turn; a share when a detector holds some out of training)."""
    return (
        f"fitted on only {count} normal clip(s): its threshold rests on {held_out} held-out score(s) and "
        f"may flag many normal clips; {FEW_NORMALS} or more normal training clips are advised"
    )


def propose_regions(
    times: np.ndarray, scores: np.ndarray, threshold: float, config: DetectorConfig
) -> list[tuple[float, float, float]]:
    """The stretches a flagged clip's frame scores point at, as (start_s, end_s, peak): the labelling
    flow's proposal rule (on at the frame threshold, hysteresis below it), with this detector's merge gap
    and shortest region."""
    from engine.labels.proposals import propose, settings_for

    settings = settings_for(threshold, scores, min_duration_s=config.min_region_s, merge_gap_s=config.merge_gap_s)
    return [(p.start_s, p.end_s, p.peak) for p in propose(times, scores, settings)]
