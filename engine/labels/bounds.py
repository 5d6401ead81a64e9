"""Regions held to the clip they belong to: times within the clip, frequencies within 0 Hz and the clip's
Nyquist frequency (half its sample rate).

Label files written by other tools, and edges dragged in the window, often reach a little past a clip's
end (a label track made on a slightly longer copy of the recording, a box drawn to the top of the
spectrogram): such a region is clamped to the clip, with a warning. One that reaches absurdly far (a region
ending at 1e12 s on a 6 s clip, a box at 1e300 Hz) is not a slip but a wrong or hostile file, and is refused:
stored, it would break what reads regions later (cutting training segments overflows on 1e308 s).

"A little": up to `END_SLACK_S` (0.5 s) before the start or past the end, or `END_SLACK_FRACTION` (1 %) of the clip's
duration where that is more (an hour's recording may drift by a few seconds); up to `NYQUIST_SLACK`
(1 %) above the Nyquist frequency.
"""

from __future__ import annotations

import math
from dataclasses import replace

from engine.store.labels import LabelError, Region

#: How far before a clip's start, or past its end, a region may reach and still be clamped to the clip, in
#: seconds ...
END_SLACK_S = 0.5
#: ... or as a share of the clip's duration, where that is more.
END_SLACK_FRACTION = 0.01
#: How far above the Nyquist frequency a box's edge may reach and still be clamped to it, as a share of it.
NYQUIST_SLACK = 0.01


class PastTheEnd(LabelError):
    """A region that starts or ends far past its clip's end: the label file may be another clip's."""


def end_slack(duration_s: float) -> float:
    """How far past the end of a clip of `duration_s` seconds a region may reach and be clamped."""
    return max(END_SLACK_S, END_SLACK_FRACTION * duration_s)


def fit_to_clip(region: Region, duration_s: float | None, sample_rate: float | None) -> tuple[Region, str | None]:
    """`region` held to its clip (`duration_s` seconds long, recorded at `sample_rate`): as it is, or
    clamped with a warning saying how; a LabelError (PastTheEnd for times) when it lies absurdly outside.
    A duration or sample rate that is unknown (None or 0) bounds nothing."""
    values = {
        "a start": region.start_s,
        "an end": region.end_s,
        "a low frequency": region.low_hz,
        "a high frequency": region.high_hz,
    }
    for what, value in values.items():
        if value is not None and not math.isfinite(float(value)):
            raise LabelError(f"has {what} of {value}, not a finite number")
    clip = f"clip {region.clip_id!r}" if region.clip_id else "the clip"
    start, end, low, high = region.start_s, region.end_s, region.low_hz, region.high_hz
    said = []
    if start < 0:
        if start < -END_SLACK_S or end <= 0:
            raise LabelError(
                f"cannot start at {start:g} s, before the start of {clip}; times are seconds from its start"
            )
        said.append(f"started at {start:g} s, before the start of {clip}: it now starts there, at 0 s")
        start = 0.0
    if duration_s and duration_s > 0:
        slack = end_slack(duration_s)
        if start > duration_s + slack:
            raise PastTheEnd(f"starts at {start:g} s, after the end of {clip} ({duration_s:g} s)")
        if end > duration_s + slack:
            raise PastTheEnd(f"ends at {end:g} s, more than {slack:g} s past the end of {clip} ({duration_s:g} s)")
        if end > duration_s:
            if start >= duration_s:
                raise PastTheEnd(f"starts at {start:g} s, at or after the end of {clip} ({duration_s:g} s)")
            said.append(f"ended at {end:g} s, past the end of {clip}: it now ends there, at {duration_s:g} s")
            end = float(duration_s)
    if sample_rate and sample_rate > 0 and high is not None and low is not None:
        nyquist = sample_rate / 2
        if high > nyquist * (1 + NYQUIST_SLACK) or low >= nyquist:
            edge = low if low >= nyquist else high
            raise LabelError(
                f"reaches {edge:g} Hz, above the highest frequency of {clip} ({nyquist:g} Hz, "
                f"half its sample rate of {sample_rate:g} Hz)"
            )
        if high > nyquist:
            said.append(
                f"reached {high:g} Hz, above the highest frequency of {clip}: it now stops there, at {nyquist:g} Hz"
            )
            high = float(nyquist)
    if not said:
        return region, None
    return replace(region, start_s=start, end_s=end, high_hz=high), "; ".join(said)
