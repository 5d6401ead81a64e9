"""Audio input: loading, validation, resampling and QA figures (io), features and augmentation later."""
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

__all__ = ["AUDIO_EXTENSIONS", "QA", "AudioInfo", "file_checksum", "load_audio", "measure_qa", "probe",
           "resample", "scan"]
