"""Train / validation splits that never leak: every item (a clip, or an augmented variant of it) belongs to
a group (its source clip, or its speaker), and a group lies wholly on one side. Splits are stratified by
class where the counts allow. `audit` checks a split after the fact and fails loudly if any group lies on
both sides: the mistake that lets a model be validated on a pitch-shifted copy of a training clip."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import EarmarkError


class LeakageError(EarmarkError):
    """A split puts variants of one source on both sides."""


@dataclass(frozen=True)
class Split:
    train: list[int]  # item indices
    validation: list[int]

    def groups(self, groups: Sequence[str]) -> tuple[set[str], set[str]]:
        return {groups[i] for i in self.train}, {groups[i] for i in self.validation}


def grouped_split(
    groups: Sequence[str], labels: Sequence[str], validation_fraction: float = 0.2, seed: int = 0
) -> Split:
    """Whole groups to each side, about `validation_fraction` of each class's groups to validation (at least
    one where a class has two or more groups). A group's class is its items' most common label."""
    if not 0 < validation_fraction < 1:
        raise EarmarkError("the validation fraction must lie between 0 and 1")
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    by_class: dict[str, list[str]] = defaultdict(list)
    for group, items in members.items():
        values, counts = np.unique([labels[i] for i in items], return_counts=True)
        by_class[str(values[np.argmax(counts)])].append(group)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for label in sorted(by_class):
        chosen = sorted(by_class[label])
        rng.shuffle(chosen)
        count = int(round(len(chosen) * validation_fraction))
        if len(chosen) >= 2:
            count = min(max(count, 1), len(chosen) - 1)
        held.update(chosen[:count])
    train = [i for i, g in enumerate(groups) if g not in held]
    validation = [i for i, g in enumerate(groups) if g in held]
    return audit(Split(train, validation), groups)


def split_by_value(groups: Sequence[str], values: Sequence[str | None], held_out: str) -> Split:
    """Items whose value (an ESC-50 fold, a project split) is `held_out` to validation, the rest to training."""
    split = Split(
        [i for i, v in enumerate(values) if v != held_out], [i for i, v in enumerate(values) if v == held_out]
    )
    return audit(split, groups)


def audit(split: Split, groups: Sequence[str]) -> Split:
    """The split, if no group lies on both sides; else LeakageError naming the groups."""
    train, validation = split.groups(groups)
    both = sorted(train & validation)
    if both:
        shown = ", ".join(both[:5]) + (f" and {len(both) - 5} more" if len(both) > 5 else "")
        raise LeakageError(
            f"leaky split: {len(both)} source clip(s) have variants on both the training and the "
            f"validation side ({shown}); split by source clip, never by variant"
        )
    if not split.train or not split.validation:
        raise EarmarkError(
            f"the split leaves {'no training' if not split.train else 'no validation'} items; "
            "label or import more clips"
        )
    return split
