"""Which training normals are left out of which model when a detector learns its threshold.

A clip a model has seen scores far lower than an unseen normal clip does (a memory bank holds the clip
itself; an auto-encoder has learnt to rebuild it), so thresholds are learnt from clips scored by a model that
did not see them. Memory banks leave one clip out at a time (or one fold of clips, for large groups); trained
models hold a fold out. The folds are drawn here, the same way for every detector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def held_out_folds(count: int, folds: int, seed: int = 0, strata: Sequence[str] | None = None) -> list[np.ndarray]:
    """Indices 0..count-1 in min(folds, count) folds, each index in exactly one fold; `folds >= count` is
    leave-one-out. Each stratum (a domain, say) is dealt over the folds in turn, so a rare domain is not all
    in one fold. The same seed gives the same folds."""
    if count < 1 or folds < 1:
        return []
    folds = min(folds, count)
    order = np.random.default_rng(seed).permutation(count)
    if strata is not None:
        order = np.array(sorted(order, key=lambda i: str(strata[i])), dtype=np.int64)
    fold_of = np.empty(count, dtype=np.int64)
    fold_of[order] = np.arange(count) % folds
    return [np.flatnonzero(fold_of == f) for f in range(folds)]
