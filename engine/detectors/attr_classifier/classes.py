"""What `attr_classifier` learns to tell apart, chosen from the trained clips' metadata
(`engine.detectors.metadata.tasks`):

- `joint` (the default): one class per section x attribute combination that has enough clips (the DCASE
  systems' classes); clips of a rarer combination take no part in training (they still join the banks);
- `tasks`: one head per metadata task (section, each attribute), their losses averaged; also where `joint`
  finds fewer than two combinations with enough clips (a few clips over many attributes);
- with no task at all (one section, no attributes), self-supervised pseudo-classes: each clip its own class,
  its members its segments' time-shifted, pitch-shifted and mixed views (`pseudo_views`).

The domain is not a class: the source and target banks keep the domains apart already. A task whose classes
cover fewer than half of the clips is dropped too: it is a value nearly every clip has its own of (a
measured SNR, say), and its few classes say nothing about the machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.metadata.segments import ClipSegments
from engine.detectors.metadata.tasks import (
    MIX,
    Task,
    fallback_report,
    joint_classes,
    metadata_tasks,
    pseudo_views,
    task_summary,
)

#: A task's kept classes must hold at least this share of the clips.
MIN_COVERAGE = 0.5


@dataclass
class ClassPlan:
    """The heads' tasks (labels per trained clip), the training segments [N, 1, M, T] with their labels
    [N, H] (-1: no class in that head), and what the fit report says."""

    kind: str
    heads: list[Task]
    inputs: torch.Tensor
    labels: torch.Tensor
    found: list[Task] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def head_classes(self) -> list[int]:
        return [max(len(t.classes), 1) for t in self.heads]

    def targets(self) -> dict[str, torch.Tensor]:
        """The training loop's targets: every head's labels, and the first head's as `class` (so the curves
        show its accuracy) when every item has a class there."""
        targets = {"labels": self.labels}
        if bool((self.labels[:, 0] >= 0).all()):
            targets["class"] = self.labels[:, 0]
        return targets

    def describe(self) -> str:
        if self.kind == "pseudo":
            return self.note
        heads = ", ".join(f"{t.name} ({len(t.classes)} classes)" for t in self.heads)
        said = f"classes: {heads}; tasks found: {task_summary(self.found)}"
        if self.dropped:
            said += f"; dropped: {'; '.join(self.dropped)}"
        return said + (f"; {self.note}" if self.note else "")

    def report(self) -> dict:
        """The model's info: what it was trained to classify, which tasks were found and dropped, and why."""
        return {
            "head_classes": self.head_classes,
            "classes": self.kind,
            "heads": {t.name: t.classes for t in self.heads} if self.kind != "pseudo" else {},
            "metadata_tasks": task_summary(self.found),
            "dropped_tasks": list(self.dropped),
            "fallback": self.note if self.kind == "pseudo" else "",
            "classes_note": self.note if self.kind != "pseudo" else "",
            "training_segments": len(self.inputs),
        }

    def mixed_with(self, noises: torch.Tensor, seed: int) -> ClassPlan:
        """The same with a copy of every segment mixed with a noise segment [n, 1, M, T] drawn at random
        (0.8 / 0.2 in power; log-mel in dB), of the same classes."""
        pick = torch.randint(len(noises), (len(self.inputs),), generator=torch.Generator().manual_seed(seed))
        power = MIX * torch.pow(10.0, self.inputs / 10.0) + (1 - MIX) * torch.pow(10.0, noises[pick] / 10.0)
        mixed = 10.0 * torch.log10(power.clamp_min(1e-10))
        return dataclasses.replace(
            self, inputs=torch.cat([self.inputs, mixed]), labels=torch.cat([self.labels, self.labels])
        )

    def signature(self) -> list:
        return [self.kind, [(t.name, t.classes, t.labels.tolist()) for t in self.heads]]


def useful_tasks(clips: Sequence[Clip], min_clips: int) -> tuple[list[Task], list[str]]:
    """The metadata tasks worth a head over `clips` (not the domain; classes covering at least half of the
    clips), and one line per task dropped, with the reason."""
    tasks, dropped = metadata_tasks(clips, min_clips, use_domain=True)
    kept = []
    for task in tasks:
        covered = int((task.labels >= 0).sum())
        if task.name == "domain":
            dropped.append("domain: not a class (the source and target banks keep the domains apart)")
        elif covered < MIN_COVERAGE * len(clips):
            dropped.append(f"{task.name}: its {len(task.classes)} classes cover only {covered} of {len(clips)} clips")
        else:
            kept.append(task)
    return kept, dropped


def plan_classes(clips: Sequence[Clip], segments: dict[str, ClipSegments], config) -> ClassPlan:
    """The classes `config` asks for over the trained `clips`, and the training segments labelled with them."""
    found, dropped = useful_tasks(clips, config.min_class_clips)
    per_clip = [segments[c.clip_id].segments for c in clips]
    if not found:
        return _pseudo(per_clip, dropped, config)
    heads, kind, note = found, "tasks", ""
    if config.classes == "joint":
        joint = joint_classes(found, config.min_class_clips)
        if len(joint.classes) >= 2:
            heads, kind = [joint], "joint"
            left = int((joint.labels < 0).sum())
            if left:
                note = f"{left} clip(s) of rarer combinations are not trained on (they join the banks)"
        else:
            # the joint task is dropped like any other: the fit report lists it with the reason
            dropped = [
                *dropped,
                f"joint: fewer than two section x attribute combinations have >= {config.min_class_clips} clips: "
                "one head per task instead",
            ]
    labels = np.stack([t.labels for t in heads], axis=1)  # [clips, H]
    taking = [i for i in range(len(clips)) if (labels[i] >= 0).any()]
    inputs = torch.cat([per_clip[i] for i in taking])
    rows = np.concatenate([np.repeat(labels[i][None], len(per_clip[i]), axis=0) for i in taking])
    return ClassPlan(kind, heads, inputs, torch.from_numpy(rows), found, dropped, note)


def _pseudo(per_clip: list[torch.Tensor], dropped: list[str], config) -> ClassPlan:
    """Each clip its own class (each segment, for a single clip), its members its segments' views."""
    segments = torch.cat(per_clip)
    owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(per_clip)])
    if len(per_clip) < 2:
        owner = torch.arange(len(segments))
    generator = torch.Generator().manual_seed(config.seed)
    if segments.dim() == 3:  # the AST's filter-bank windows [n, W, 128 + 1], viewed as images [n, 1, 128, W]
        images, which = pseudo_views(segments[..., :-1].transpose(1, 2)[:, None], generator, config.pseudo_views)
        views = torch.cat([images[:, 0].transpose(1, 2), segments[which][..., -1:]], dim=2)
    else:
        views, which = pseudo_views(segments, generator, config.pseudo_views)
    labels = owner[which]
    classes = int(labels.max()) + 1
    task = Task("pseudo", [str(i) for i in range(classes)], np.arange(classes))
    note = fallback_report(dropped, len(per_clip), config.pseudo_views)
    return ClassPlan("pseudo", [task], views, labels[:, None], [], dropped, note)
