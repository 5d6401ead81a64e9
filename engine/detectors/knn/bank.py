"""Memory-bank arithmetic for the k-NN detector, in torch on any device.

A bank is a matrix of embeddings with, per row, the index of the training clip it came from (`parent`):
leave-one-out statistics exclude every row of a clip's own parent, its MemMixup and augmented copies too.
"""

from __future__ import annotations

import torch

METRICS = ("l2", "cosine")
_CHUNK = 4096


def pairwise(query: torch.Tensor, bank: torch.Tensor, metric: str) -> torch.Tensor:
    """[Q, N] distances: squared L2, or cosine distance (1 - cosine similarity)."""
    if metric == "cosine":
        q = torch.nn.functional.normalize(query, dim=1)
        b = torch.nn.functional.normalize(bank, dim=1)
        return 1.0 - q @ b.T
    # |q|^2 + |b|^2 - 2 q.b, with the product and the bank's norms fused into one pass (addmm)
    squared = torch.addmm((bank * bank).sum(1)[None], query, bank.T, alpha=-2.0)
    return squared.add_((query * query).sum(1, keepdim=True)).clamp_min_(0.0)


def knn_distance(
    query: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    metric: str,
    query_parent: torch.Tensor | None = None,
    bank_parent: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean distance of each query row to its k nearest bank rows, in chunks of rows.

    With parents given, bank rows sharing the query row's parent are left out (leave-one-out). A query with
    fewer than k eligible rows averages over those it has; with none it gets NaN.
    """
    if len(bank) == 0:
        return torch.full((len(query),), float("nan"), device=query.device)
    k = min(k, len(bank))
    out = []
    for start in range(0, len(query), _CHUNK):
        distances = pairwise(query[start : start + _CHUNK], bank, metric)
        if query_parent is not None and bank_parent is not None:
            same = query_parent[start : start + _CHUNK, None] == bank_parent[None]
            distances = distances.masked_fill(same, float("inf"))
        nearest = torch.topk(distances, k, dim=1, largest=False).values
        finite = torch.isfinite(nearest)
        total = torch.where(finite, nearest, torch.zeros_like(nearest)).sum(1)
        count = finite.sum(1)
        out.append(torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan"))))
    return torch.cat(out)


def mem_mixup(
    target: torch.Tensor,
    source: torch.Tensor,
    neighbours: int,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MemMixup: each target row mixed with each of its `neighbours` nearest source rows,
    lam * target + (1 - lam) * source. Returns (mixed rows, index of the target row each came from)."""
    if len(target) == 0 or len(source) == 0 or neighbours < 1:
        return target.new_zeros((0, target.shape[1])), torch.zeros(0, dtype=torch.long, device=target.device)
    neighbours = min(neighbours, len(source))
    nearest = torch.topk(pairwise(target, source, "l2"), neighbours, dim=1, largest=False).indices
    mixed = lam * target[:, None, :] + (1.0 - lam) * source[nearest]
    origin = torch.arange(len(target), device=target.device).repeat_interleave(neighbours)
    return mixed.reshape(-1, target.shape[1]), origin


def leave_one_out_stats(
    rows: torch.Tensor, parents: torch.Tensor, bank: torch.Tensor, bank_parent: torch.Tensor, k: int, metric: str
) -> tuple[float, float] | None:
    """Mean and standard deviation of the training clips' leave-one-out k-NN distances to a bank;
    None when fewer than three clips have a distance (the bank then has too few clips to normalise: two
    clips are each other's nearest, one distance twice, with no spread to divide by)."""
    distances = knn_distance(rows, bank, k, metric, parents, bank_parent)
    distances = distances[torch.isfinite(distances)]
    if len(distances) < 3:
        return None
    return float(distances.mean()), float(distances.std(unbiased=False).clamp_min(1e-8))
