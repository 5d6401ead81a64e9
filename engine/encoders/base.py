"""The encoder contract: waveforms in, clip vectors, frame vectors and (where it has them) a patch grid out.

Every patch row has a frequency span in Hz and every patch column a time span in seconds, so a value
computed per patch is a box on the spectrogram. Encoders read audio and cache features through the
project's `FeatureCache`; `embed_waveforms` serves audio that exists only in memory (augmented copies).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.audio.feature_cache import FeatureCache
from engine.data.clip import Clip
from engine.jobs import Progress


@dataclass
class Embedding:
    """One clip's embeddings. `frames` [T, Df] at `frame_times` [T] seconds; `patches` [L, F, Tp, Dp] or None
    (L layers of a F x Tp grid), with `freq_spans_hz` [F, 2] (low, high) and `time_spans_s` [Tp, 2]
    (start, end)."""

    clip: np.ndarray
    frames: np.ndarray
    frame_times: np.ndarray
    patches: np.ndarray | None = None
    freq_spans_hz: np.ndarray | None = None
    time_spans_s: np.ndarray | None = None


class Encoder(ABC):
    """Turns clips into `Embedding`s. Subclasses set `name` and implement `embed_features` or override
    `encode` and `embed_waveforms` together."""

    name: str = ""
    #: The layers whose patches `encode(..., patches=True)` returns (1-based; -1 is the last).
    layers: tuple[int, ...] = (1,)

    def __init__(self, cache: FeatureCache, layers: Sequence[int] = ()) -> None:
        self.cache = cache
        if layers:
            self.layers = tuple(layers)

    @abstractmethod
    def encode(
        self,
        clips: Sequence[Clip],
        progress: Progress | None = None,
        *,
        patches: bool = False,
    ) -> dict[str, Embedding]:
        """clip_id -> Embedding for every readable clip; unreadable clips go to `progress.problem`."""

    @abstractmethod
    def embed_waveforms(self, waveforms: Sequence[np.ndarray], *, patches: bool = False) -> list[Embedding]:
        """Embeddings of float32 mono waveforms at the encoder's `sample_rate`."""

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...


ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    ENCODERS[cls.name] = cls
    return cls


def make_encoder(name: str, cache: FeatureCache, layers: Sequence[int] = ()) -> Encoder:
    """The encoder called `name`; pretrained ones load the weights set up with `earmark weights add`."""
    from engine.errors import EarmarkError

    if name not in ENCODERS:
        raise EarmarkError(f"unknown encoder {name!r}; available: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](cache, layers=layers)
