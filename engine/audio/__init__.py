"""Audio input: loading, validation, resampling and QA figures (io); log-mel features (features), their cache
(feature_cache) and augmentation (augment) live beside it."""

from __future__ import annotations

from engine.audio.io import (
    AUDIO_EXTENSIONS,
    QA,
    AudioInfo,
    file_checksum,
    load_audio,
    measure_qa,
    probe,
    resample,
    scan,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "QA",
    "AudioInfo",
    "file_checksum",
    "load_audio",
    "measure_qa",
    "probe",
    "resample",
    "scan",
]
