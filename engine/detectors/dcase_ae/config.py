"""`dcase_ae`'s settings: the official baseline's features and network, its training and the threshold rule."""

from __future__ import annotations

from dataclasses import dataclass

from engine.audio.features import LogMelConfig
from engine.detectors.base import DetectorConfig
from engine.errors import EarmarkError

MODES = ("mse", "mahalanobis")
BRANCHES = ("encoder", "decoder")


@dataclass
class DcaseAEConfig(DetectorConfig):
    mode: str = "mse"
    n_mels: int = 128
    frames: int = 5
    n_fft: int = 1024
    hop_length: int = 512
    power: float = 2.0
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0
    #: Added to the residual covariances' diagonal (times their mean variance) so they always invert.
    ridge: float = 1e-3
    #: The threshold comes from clips the network did not train on. Groups with at least this many normals
    #: hold `held_out_fraction` of them out of training; smaller ones are cross-fitted: `folds` extra short
    #: networks, each trained without one fold, score that fold (and the network kept trains on all clips).
    cross_fit_below: int = 20
    held_out_fraction: float = 0.2
    folds: int = 5
    #: z-score every input dimension (mel band x frame) with the mean and spread of the clips the network
    #: trains on, so a quiet band counts as much as a loud one (the official baseline: false; see README).
    standardise: bool = True
    #: A branch (encoder or decoder) that does not train at all, to see what the other learns alone
    #: (`earmark debug freeze`); "" trains both.
    freeze: str = ""
    #: The encoder stays frozen for this many first epochs (0: none).
    warm_up_epochs: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EarmarkError(f"dcase_ae: mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.freeze not in ("", *BRANCHES):
            raise EarmarkError(
                f"dcase_ae: freeze names a branch, {' or '.join(BRANCHES)} (or nothing), not {self.freeze!r}"
            )
        if self.warm_up_epochs < 0:
            raise EarmarkError(f"dcase_ae: warm_up_epochs must be 0 or more, not {self.warm_up_epochs}")
        if self.freeze == "decoder" and self.warm_up_epochs:
            raise EarmarkError(
                "dcase_ae: warm_up_epochs freezes the encoder while freeze=decoder freezes the decoder: nothing "
                "would train in those epochs; use warm_up_epochs=0 with freeze=decoder"
            )
        if self.epochs < 1 or self.batch_size < 2 or self.frames < 1:
            raise EarmarkError("dcase_ae: epochs >= 1, batch_size >= 2 and frames >= 1 are required")
        if not 0.0 < self.held_out_fraction < 1.0 or self.folds < 2:
            raise EarmarkError("dcase_ae: held_out_fraction must lie between 0 and 1, and folds be at least 2")

    @property
    def features(self) -> LogMelConfig:
        return LogMelConfig(n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels, power=self.power)
