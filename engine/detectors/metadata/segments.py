"""The log-mel input of the metadata detectors: each clip cut into fixed-size segments [S, 1, M, T] (M mel
bands, T frames, the next segment starting half a segment later), with each segment's time span in seconds
and the mel bands' frequency spans in Hz, so that a segment's per-patch embeddings map onto the clip's
spectrogram.

Features come from the project's feature cache (computed once per clip and feature setting). A clip shorter
than one segment but at least a quarter of one is repeated to fill it (a machine's sound goes on; padding
with silence would read as a fault); a shorter or unreadable clip is named through `progress.problem` and
left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache
from engine.audio.features import LogMelConfig
from engine.data.clip import Clip
from engine.jobs import Progress


@dataclass(frozen=True)
class SegmentConfig:
    """How clips are cut: `n_mels` bands, segments of `frames` frames at `hop_length` samples per frame."""

    n_mels: int = 64
    frames: int = 64
    n_fft: int = 1024
    hop_length: int = 512
    sample_rate: int = 16000

    @property
    def features(self) -> LogMelConfig:
        return LogMelConfig(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels
        )

    @property
    def step(self) -> int:
        """Frames from one segment's start to the next's: half a segment."""
        return max(1, self.frames // 2)

    @property
    def min_frames(self) -> int:
        """The fewest frames a clip needs: a quarter of a segment (fewer would be mostly repetition)."""
        return max(1, self.frames // 4)

    @property
    def frame_s(self) -> float:
        return self.hop_length / self.sample_rate


@dataclass
class ClipSegments:
    """One clip's segments [S, 1, M, T] (log-mel in dB), each one's (start, end) seconds [S, 2], and how many
    real frames the clip has (a short clip's one segment repeats them: its span runs past `end_s`)."""

    segments: torch.Tensor
    time_spans_s: np.ndarray
    frames: int
    frame_s: float

    @property
    def end_s(self) -> float:
        """Where the clip's last frame ends."""
        return self.frames * self.frame_s


def cut(mel: np.ndarray, config: SegmentConfig) -> tuple[torch.Tensor, np.ndarray]:
    """A clip's log-mel [M, frames] as segments [S, 1, M, T] and their time spans [S, 2] in seconds. Segments
    start every `config.step` frames; the last one ends at the clip's last frame, so every frame is covered. A
    clip shorter than a segment is repeated to fill one (its span then runs past the clip's end)."""
    width, count = config.frames, mel.shape[1]
    if count < width:
        segment = np.tile(mel, (1, -(-width // count)))[:, :width]
        spans = np.array([[0.0, width * config.frame_s]])
        return torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))[None, None], spans
    starts = list(range(0, count - width + 1, config.step))
    if starts[-1] != count - width:
        starts.append(count - width)
    segments = np.stack([mel[:, s : s + width] for s in starts])[:, None]
    spans = np.array([[s * config.frame_s, (s + width) * config.frame_s] for s in starts])
    return torch.from_numpy(np.ascontiguousarray(segments, dtype=np.float32)), spans


def clip_segments(
    cache: FeatureCache, clips: Sequence[Clip], config: SegmentConfig, progress: Progress
) -> dict[str, ClipSegments]:
    """clip_id -> its segments, for every clip that could be read and is long enough (the rest are named
    through `progress.problem`)."""
    features = cache.features(clips, config.features, progress)
    found = {}
    for clip in clips:
        mel = features.get(clip.clip_id)
        if mel is None:
            continue  # the cache named it
        if mel.shape[1] < config.min_frames:
            need = config.features.min_duration_s(config.min_frames)
            progress.problem(
                f"{clip.clip_id}: skipped, too short for a segment: {clip.duration_s:.2f} s, needs {need:.2f} s"
            )
            continue
        segments, spans = cut(mel, config)
        found[clip.clip_id] = ClipSegments(segments, spans, mel.shape[1], config.frame_s)
    return found


def band_spans_hz(config: SegmentConfig, rows: int) -> np.ndarray:
    """[rows, 2] (low, high) Hz of each row of a feature map that splits the M mel bands into `rows` equal
    groups (the conv encoder's pooling does)."""
    edges = config.features.band_edges_hz()
    bounds = np.linspace(0, config.n_mels, rows + 1).round().astype(int)
    return np.stack([edges[bounds[:-1]], edges[bounds[1:]]], axis=1)


def column_spans_s(span_s: np.ndarray, columns: int, end_s: float | None = None) -> np.ndarray:
    """[C, 2] (start, end) seconds of the columns of a segment's feature map (`columns` of them), the segment
    spanning `span_s` (start, end). With `end_s` (where a repeated short clip ends), only the columns that
    start before it are kept (C <= columns, at least one), the last cut at it."""
    bounds = np.linspace(span_s[0], span_s[1], columns + 1)
    spans = np.stack([bounds[:-1], bounds[1:]], axis=1)
    if end_s is not None:
        spans = spans[: max(1, int(np.sum(spans[:, 0] < end_s - 1e-9)))]
        spans[-1, 1] = min(spans[-1, 1], end_s) if spans[-1, 0] < end_s else spans[-1, 1]
    return spans
