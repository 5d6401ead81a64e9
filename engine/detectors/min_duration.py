"""The shortest clip a detector can read, worked out once from its feature settings.

A clip shorter than that cannot be turned into features at all (the spectrogram's reflect padding fails) or
gives fewer frames than the model looks at, so it is skipped with its reason and the rest of its group goes
on, instead of failing the whole group.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.audio.features import LogMelConfig
from engine.data.clip import Clip
from engine.jobs import Progress

#: Kept off the limit: a clip's sample count after resampling can be one short of its duration's.
_MARGIN_SAMPLES = 2


def min_duration_s(detector) -> float:
    """Seconds of audio `detector` needs: from its log-mel settings (its own, its segments' or its
    encoder's), times the frames it stacks (`config.frames`); an encoder may state its own minimum."""
    config = detector.config
    encoder = getattr(detector, "encoder", None)
    features = (
        getattr(config, "features", None)
        or getattr(getattr(config, "segments", None), "features", None)
        or getattr(encoder, "config", None)
    )
    if isinstance(features, LogMelConfig):
        frames = getattr(config, "frames", 1)
        frames = frames if isinstance(frames, int) and frames > 0 else 1
        return (features.min_samples(frames) + _MARGIN_SAMPLES) / features.sample_rate
    return float(getattr(encoder, "min_duration_s", 0.0))


def long_enough(detector, clips: Sequence[Clip], progress: Progress) -> list[Clip]:
    """The clips `detector` can read; each shorter one is named through `progress.problem` with its reason."""
    need = min_duration_s(detector)
    kept = []
    for clip in clips:
        if clip.duration_s < need:
            progress.problem(
                f"{clip.clip_id}: skipped, too short for {detector.key}: {clip.duration_s:.2f} s, needs {need:.2f} s"
            )
        else:
            kept.append(clip)
    return kept
