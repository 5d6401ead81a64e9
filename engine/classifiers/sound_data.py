"""The sound classifier's data: one log-mel image per clip and per augmented variant of it.

Every clip with a class (`attributes["class"]`: an ESC-50 category, an EmoDB emotion, a folder's name) is cut
or padded to `clip_seconds`; each variant (noise, pitch, stretch, reverb, gain) is made from the waveform with
fixed settings, so it is cached by the project's feature cache like any feature. The variants of a clip keep
its clip id as their group: a split puts them all on the clip's side.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from engine.audio import augment
from engine.audio.features import LogMelConfig

VARIANTS = ("noise", "pitch", "stretch", "reverb", "gain")


@dataclass(frozen=True)
class ClipImage:
    """A FeatureSpec: the log-mel image of a clip's first `clip_seconds`, after the augmentation `variant`."""

    base: LogMelConfig
    variant: str = "original"
    clip_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.variant != "original" and self.variant not in VARIANTS:
            raise ValueError(f"unknown augmentation {self.variant!r}; choose from {', '.join(VARIANTS)}")

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    @property
    def key(self) -> str:
        text = json.dumps([self.base.key, self.variant, self.clip_seconds])
        return f"image-{self.variant}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def compute(self, waveforms: torch.Tensor) -> torch.Tensor:
        length = int(round(self.clip_seconds * self.sample_rate))
        rows = [self._vary(augment.fit_length(row, length)) for row in waveforms.cpu().numpy()]
        return self.base.compute(torch.from_numpy(np.stack(rows)).to(waveforms.device))

    def _vary(self, x: np.ndarray) -> np.ndarray:
        if self.variant == "noise":
            return augment.add_noise(x, snr_db=20.0, seed=len(x))
        if self.variant == "pitch":
            return augment.pitch_shift(x, self.sample_rate, 2.0)
        if self.variant == "stretch":
            return augment.time_stretch(x, 0.9)
        if self.variant == "reverb":
            return augment.reverb(x, self.sample_rate)
        if self.variant == "gain":
            return augment.gain(x, -6.0)
        return x
