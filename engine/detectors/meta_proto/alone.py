"""The held-out score of a memory of one clip, which has no other clip to be left out of.

A clip's held-out score must never include a match with itself (a threshold of about 0 would flag every
unseen normal clip). With one training clip, each of its segments is measured against the clip's segments
that do not overlap it (segments hop by half their length, so the two neighbours are left out with it):
the prototype is their mean embedding and the patch bank their columns. A clip of fewer than 3 segments
has no such segment: it is measured instead by two views of itself (a time roll and a mel shift of its
segments, as the pseudo-classes make them) against the memory, and the fit report says so."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.detectors.meta_proto.memory import Memory
from engine.detectors.metadata.tasks import pseudo_views

#: Views of `pseudo_views` that stand for an unseen recording of the clip: the time roll and the mel shift.
_VIEWS = (1, 2)
#: Fewer segments than this leave a segment no other that does not overlap it.
MIN_SEGMENTS = 3

SINGLE_SEGMENT = (
    "meta_proto: the only training clip is too short to leave part of it out ({count} segment(s)): "
    "its held-out score is that of a time-rolled and a mel-shifted view of it, so the threshold is rough; "
    "fit on 2 or more normal clips"
)


def alone_score(
    memory: Memory,
    domain: str | None,
    segments: torch.Tensor,
    embedded: tuple[torch.Tensor, torch.Tensor],
    embed: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    seed: int,
) -> tuple[float, list[np.ndarray], bool]:
    """(raw score, the per-segment maps [R, Tc] of what was measured, whether views stood in), for the only
    clip of `memory`: its segments [S, 1, M, T] and their (embeddings [S, D], feature maps [S, P, R, Tc])."""
    vectors, fmaps = embedded
    columns = fmaps.permute(0, 3, 2, 1)  # [S, Tc, R, P]
    count = len(vectors)
    if count >= MIN_SEGMENTS:
        raws, maps = [], []
        for i in range(count):
            far = torch.tensor([j for j in range(count) if abs(i - j) >= 2])
            prototype = vectors[far].mean(dim=0, keepdim=True)
            raws.append(memory.raw_score(vectors[i : i + 1], domain, prototypes=prototype))
            maps.append(memory.patch_distances(columns[i], domain, bank=columns[far].flatten(0, 1)).T.numpy())
        return float(np.mean(raws)), maps, False
    views, _ = pseudo_views(segments, torch.Generator().manual_seed(seed))
    chosen = torch.tensor([s * len(views) // count + v for s in range(count) for v in _VIEWS])
    with torch.inference_mode():
        view_vectors, view_maps = embed(views[chosen])
    # the farther view of each segment stands in for an unseen recording: a view is still the clip itself
    raw = float(np.mean([max(memory.raw_score(v[None], domain) for v in pair) for pair in view_vectors.split(2)]))
    found = [memory.patch_distances(c, domain).T.numpy() for c in view_maps.permute(0, 3, 2, 1)]
    maps = [np.maximum(*found[s * len(_VIEWS) : (s + 1) * len(_VIEWS)]) for s in range(count)]  # per segment
    return raw, maps, True
