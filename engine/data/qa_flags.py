"""QA flags: the few things about a recording worth a warning, judged from the QA figures stored at import.

A flag does not stop a clip from being imported; it is named in the import report and shown in the clip
table, so a user can find the recording that was cut short, left the microphone off or overloaded it.
"""

from __future__ import annotations

import math

import numpy as np

from engine.audio.io import QA

#: Shorter than this is too short for most detectors (dcase_ae needs 5 frames of 32 ms).
TOO_SHORT_S = 0.25
#: Silent: this fraction of the 20 ms frames lies below the silence level (-60 dBFS), or the overall level does.
SILENT_FRACTION = 0.95
SILENT_RMS_DBFS = -60.0
#: Clipped: this fraction of the samples is at full scale.
CLIPPED_FRACTION = 0.001

FLAGS = ("too short", "silent", "clipped")


def qa_flags(duration_s: float, qa: QA | None) -> list[str]:
    """The QA flags of a clip, in the order of `FLAGS`; figures not measured (NaN, None) raise none."""
    flags = []
    if duration_s < TOO_SHORT_S:
        flags.append("too short")
    if qa is not None:
        if _at_least(qa.silence_ratio, SILENT_FRACTION) or _below(qa.rms, SILENT_RMS_DBFS):
            flags.append("silent")
        if _at_least(qa.clipping_ratio, CLIPPED_FRACTION):
            flags.append("clipped")
    return flags


def qa_text(duration_s: float, qa: QA | None) -> str:
    """The flags as one cell of a table: "too short, silent", or "" for a clip with none."""
    return ", ".join(qa_flags(duration_s, qa))


def qa_flag_codes(
    duration_s: np.ndarray, rms: np.ndarray, clipping_ratio: np.ndarray, silence_ratio: np.ndarray
) -> np.ndarray:
    """`qa_flags` of many clips at once, as bit masks (bit i: `FLAGS[i]`); NaN figures raise none. For a
    table of every clip of a large project, where calling `qa_flags` per clip takes a second."""
    with np.errstate(invalid="ignore"):
        silent = (silence_ratio >= SILENT_FRACTION) | (rms < SILENT_RMS_DBFS)
        clipped = clipping_ratio >= CLIPPED_FRACTION
    return (duration_s < TOO_SHORT_S).astype(np.int8) | silent.astype(np.int8) << 1 | clipped.astype(np.int8) << 2


def qa_code_text(code: int) -> str:
    """The table cell of a `qa_flag_codes` bit mask (as `qa_text`)."""
    return ", ".join(flag for i, flag in enumerate(FLAGS) if code >> i & 1)


def _at_least(value: float | None, limit: float) -> bool:
    return value is not None and not math.isnan(value) and value >= limit


def _below(value: float | None, limit: float) -> bool:
    return value is not None and not math.isnan(value) and value < limit
