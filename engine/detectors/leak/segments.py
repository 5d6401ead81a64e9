"""How the leak detector reads a spectrogram: its classes, the short segments it judges and the long
segments a file is voted on. One rule for training (`engine.classifiers.leak_data` cuts labelled regions)
and for scoring (the detector cuts whole clips)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from engine.audio.features import LogMelConfig
from engine.errors import EarmarkError

LEAK = "LEAK"
MULTICLASS = ("LEAK", "NORMAL", "QUIET", "RANDOM", "MECHANICAL")
BINARY = ("NOLEAK", "LEAK")
MODES = ("binary", "multiclass")


@dataclass(frozen=True)
class SegmentSettings:
    sample_rate: int = 8000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 32
    segment_frames: int = 8
    long_segment_s: float = 2.0

    @property
    def features(self) -> LogMelConfig:
        return LogMelConfig(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels
        )

    @property
    def long_frames(self) -> int:
        return max(self.segment_frames, int(round(self.long_segment_s * self.sample_rate / self.hop_length)))


@dataclass
class LeakJudging:
    """What the training config and the trained detector share: how segments are cut and files judged."""

    segment_frames: int = 8
    long_segment_s: float = 2.0
    #: A long segment passes when its mean leak probability reaches this; a file is LEAK when at least
    #: `vote_fraction` of its long segments pass.
    threshold: float = 0.5
    vote_fraction: float = 0.5

    @property
    def segments(self) -> SegmentSettings:
        return SegmentSettings(segment_frames=self.segment_frames, long_segment_s=self.long_segment_s)

    def judging(self) -> dict:
        """These fields' values, to build the other config from this one."""
        return {f.name: getattr(self, f.name) for f in fields(LeakJudging)}


def cut_segments(
    mel: np.ndarray,
    first: int,
    last: int,
    settings: SegmentSettings,
    stride: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start frames, segments [N, n_mels, width], long-segment ids) of `mel` between frames `first` and
    `last`: one rule for training (a labelled region) and scoring (a whole clip)."""
    width = settings.segment_frames
    starts = np.arange(first, last - width + 1, stride)
    segments = (
        np.stack([mel[:, s : s + width] for s in starts])
        if len(starts)
        else np.zeros((0, mel.shape[0], width), dtype=np.float32)
    )
    return starts, segments, (starts - first) // settings.long_frames


def classes_for(mode: str) -> tuple[str, ...]:
    if mode not in MODES:
        raise EarmarkError(f"leak mode must be one of {', '.join(MODES)}, not {mode!r}")
    return BINARY if mode == "binary" else MULTICLASS
