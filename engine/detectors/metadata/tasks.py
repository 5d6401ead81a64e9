"""The metadata users already have, as auxiliary classification tasks: the section, every attribute column
(speed_level, load_level, mic_position_id, noise_id, ...) and the domain. A task is worth learning when it has
at least two classes with enough clips; the others are dropped with the reason, for the fit report.

With no task left (one section, no attributes), `pseudo_views` makes self-supervised pseudo-classes instead:
each training clip is its own class, its members the clip's time-shifted, pitch-shifted and mixed versions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.data.clip import Clip

#: The views of a clip in `pseudo_views`: itself, shifted in time, shifted in pitch, mixed with another clip.
VIEWS = 4
#: A mixed view is this share of the clip and the rest of another clip (in power).
MIX = 0.8


@dataclass
class Task:
    """A classification task over clips: its class names (sorted) and each clip's class index (-1 where the
    clip takes no part: its value is missing or its class has too few clips)."""

    name: str
    classes: list[str]
    labels: np.ndarray


def _values(clips: Sequence[Clip], name: str) -> list[str | None]:
    if name == "section":
        return [c.section_id for c in clips]
    if name == "domain":
        return [c.domain for c in clips]
    return [c.attributes.get(name) or None for c in clips]


def _listed(classes: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(classes[:most])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > most else "")


def metadata_tasks(clips: Sequence[Clip], min_clips: int = 2, use_domain: bool = True) -> tuple[list[Task], list[str]]:
    """(tasks kept, one line per task dropped saying why) over `clips`: `section`, every attribute key found
    on the clips, and `domain` (with `use_domain`). A class needs at least `min_clips` clips and a task at
    least two such classes. Tasks in sorted order of their names, classes sorted."""
    names = {"section"} | {key for c in clips for key in c.attributes}
    if use_domain:
        names.add("domain")
    kept, dropped = [], []
    for name in sorted(names):
        values = _values(clips, name)
        counts = Counter(v for v in values if v is not None)
        classes = sorted(v for v, n in counts.items() if n >= min_clips)
        if len(classes) >= 2:
            index = {value: i for i, value in enumerate(classes)}
            labels = np.array([index.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
            kept.append(Task(name, classes, labels))
            continue
        dropped.append(f"{name}: {_why(name, counts, classes, min_clips)}")
    return kept, dropped


def _why(name: str, counts: Counter, classes: list[str], min_clips: int) -> str:
    """Why a task with fewer than two classes of `min_clips` clips is dropped."""
    if not counts:
        return "no clip has a value"
    if len(counts) == 1:
        [value] = counts
        said = f"one class ({value})"
        return f"{said}: one section per model group" if name == "section" else said
    fewer = len(counts) - len(classes)
    if not classes:
        most = max(counts.values())
        each = f"{most} clip{'s' if most > 1 else ''} each"
        return f"no class has >= {min_clips} clips ({len(counts)} classes, at most {each})"
    return f"1 class with >= {min_clips} clips ({classes[0]}); {fewer} classes have fewer"


def joint_classes(tasks: Sequence[Task], min_clips: int = 2) -> Task:
    """The section x attribute product (task "joint"): each clip's tuple of its classes in the non-domain
    `tasks` is one class; a tuple with fewer than `min_clips` clips is dropped (-1). A clip missing from a task
    (-1 there) has "?" in that place of its tuple. Classes read "section=00|speed_level=1"."""
    parts = [t for t in tasks if t.name != "domain"]
    if not parts:
        return Task("joint", [], np.full(len(tasks[0].labels) if tasks else 0, -1, dtype=np.int64))
    count = len(parts[0].labels)
    names = [
        "|".join(f"{t.name}={t.classes[t.labels[i]] if t.labels[i] >= 0 else '?'}" for t in parts) for i in range(count)
    ]
    counts = Counter(names)
    classes = sorted(name for name, n in counts.items() if n >= min_clips)
    index = {name: i for i, name in enumerate(classes)}
    return Task("joint", classes, np.array([index.get(n, -1) for n in names], dtype=np.int64))


def task_summary(tasks: Sequence[Task]) -> str:
    """One line naming the tasks kept, for the fit report: "load_level (2 classes), section (3 classes)"."""
    return ", ".join(f"{t.name} ({len(t.classes)} classes: {_listed(t.classes)})" for t in tasks) or "none"


def pseudo_views(
    segments: torch.Tensor, generator: torch.Generator, views: int = VIEWS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-supervised pseudo-classes: each of the `n` segments [n, 1, M, T] (log-mel dB, one per training
    clip) is its own class, with `views` members: itself, then in turn a time shift (a roll by 1/8 to 1/2 of
    the frames), a pitch shift (a roll of the mel bins by +-1..2) and a mix with another clip (0.8 / 0.2 in
    power). Returns (views [n * views, 1, M, T], labels [n * views]), clip by clip."""
    n, _, bands, frames = segments.shape
    made = []
    for i in range(n):
        clip = segments[i]
        for v in range(views):
            kind = v % VIEWS
            if kind == 0:
                made.append(clip)
            elif kind == 1:
                low, high = max(1, frames // 8), max(2, frames // 2)
                shift = int(torch.randint(low, high + 1, (1,), generator=generator))
                made.append(torch.roll(clip, shift, dims=2))
            elif kind == 2:
                shift = int(torch.randint(1, 3, (1,), generator=generator))
                sign = 1 if int(torch.randint(0, 2, (1,), generator=generator)) else -1
                made.append(_shift_bands(clip, sign * shift))
            else:
                other = segments[(i + int(torch.randint(1, max(n, 2), (1,), generator=generator))) % n]
                made.append(_mix(clip, other))
    labels = torch.arange(n).repeat_interleave(views)
    return torch.stack(made), labels


def _shift_bands(segment: torch.Tensor, shift: int) -> torch.Tensor:
    """The segment [1, M, T] with its mel bins moved by `shift` (up: positive), the band shifted in from the
    edge repeating the edge's (a roll would wrap the top band to the bottom)."""
    moved = torch.roll(segment, shift, dims=1)
    if shift > 0:
        moved[:, :shift] = segment[:, :1]
    elif shift < 0:
        moved[:, shift:] = segment[:, -1:]
    return moved


def _mix(segment: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """MIX of the segment and 1 - MIX of another, added as powers (the segments are in dB)."""
    power = MIX * torch.pow(10.0, segment / 10.0) + (1 - MIX) * torch.pow(10.0, other / 10.0)
    return 10.0 * torch.log10(power.clamp_min(1e-10))


def fallback_report(dropped: Sequence[str], clips: int, views: int = VIEWS) -> str:
    """What the fit report says when no metadata task is left."""
    reasons = "; ".join(dropped) or "no metadata"
    return f"no metadata tasks ({reasons}): trained on self-supervised pseudo-classes ({clips} clips x {views} views)"
