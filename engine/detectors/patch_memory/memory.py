"""The patch memory's one computation: for every query patch, the highest cosine similarity to any memory
patch (or any memory patch of a nearby grid row: a nearby frequency band), in blocks small enough that the
similarity matrix never exceeds a memory budget."""

from __future__ import annotations

import torch

BYTES_PER_FLOAT = 4


def block_shape(queries: int, memory: int, budget_mb: float) -> tuple[int, int]:
    """(query rows, memory rows) per block so one block of similarities fits in `budget_mb`."""
    budget = max(1, int(budget_mb * 2**20 / BYTES_PER_FLOAT))
    query_rows = max(1, min(queries, budget // max(1, memory)))
    memory_rows = max(1, min(memory, budget // query_rows))
    return query_rows, memory_rows


def max_cosine(
    queries: torch.Tensor,
    memory: torch.Tensor,
    budget_mb: float,
    query_owner: torch.Tensor | None = None,
    memory_owner: torch.Tensor | None = None,
    query_band: torch.Tensor | None = None,
    memory_band: torch.Tensor | None = None,
    band_window: int = -1,
) -> torch.Tensor:
    """[Nq] highest cosine similarity of each query row [Nq, D] to the memory rows [Nm, D] (both already
    unit length). With owners, a query never matches memory rows of its own owner (leave-one-out); with
    bands (grid rows) and `band_window` >= 0, a query matches only memory rows whose band lies within that
    many rows of its own. A query with nothing left to match gets -1."""
    best = torch.full((len(queries),), -1.0, device=queries.device)
    if not len(memory):
        return best
    if band_window >= 0 and query_band is not None and memory_band is not None:
        # One search per band against its nearby bands' patches alone: cheaper than masking the far ones
        for band in torch.unique(query_band).tolist():
            mine, near = query_band == band, (memory_band - band).abs() <= band_window
            best[mine] = max_cosine(
                queries[mine],
                memory[near],
                budget_mb,
                None if query_owner is None else query_owner[mine],
                None if memory_owner is None else memory_owner[near],
            )
        return best
    query_rows, memory_rows = block_shape(len(queries), len(memory), budget_mb)
    for q in range(0, len(queries), query_rows):
        block_best = best[q : q + query_rows]
        for m in range(0, len(memory), memory_rows):
            sims = queries[q : q + query_rows] @ memory[m : m + memory_rows].T
            if query_owner is not None and memory_owner is not None:
                same = query_owner[q : q + query_rows, None] == memory_owner[None, m : m + memory_rows]
                sims.masked_fill_(same, -1.0)
            block_best = torch.maximum(block_best, sims.amax(dim=1))
            del sims
        best[q : q + query_rows] = block_best
    return best
