"""What `attr_classifier` scores against: the k-NN back-end on clip embeddings (a source and a target bank,
optionally domain-normalised) and the bank of normal patch embeddings per frequency row that the frame lane
and the anomaly map come from.

The clip banks reuse the memory-bank arithmetic of `knn` (`engine.detectors.knn.bank`): cosine (or squared L2)
distance to the k nearest rows, and the leave-one-out statistics that domain normalisation z-scores each
bank's distances with.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.detectors.knn.bank import knn_distance, leave_one_out_stats

DOMAINS = ("source", "target")
#: Map columns compared with the patch bank at once.
_COLUMNS = 256


class ClipBanks:
    """Per domain: the normal clips' embeddings [N, D] and each row's clip number (`parent`), and the mean
    and spread of the clips' leave-one-out distances to their own bank (None below three clips)."""

    def __init__(self, dim: int, k: int, metric: str) -> None:
        self.k, self.metric = k, metric
        self.rows = {d: torch.zeros((0, dim)) for d in DOMAINS}
        self.parents = {d: torch.zeros(0, dtype=torch.long) for d in DOMAINS}
        self.stats: dict[str, tuple[float, float] | None] = {d: None for d in DOMAINS}

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.parents.values())

    def add(self, domain: str | None, rows: torch.Tensor) -> torch.Tensor:
        """Add clips' embeddings to the bank of `domain` (None: source); returns their parent numbers."""
        domain = domain if domain in DOMAINS else "source"
        parents = torch.arange(self.count, self.count + len(rows))
        self.rows[domain] = torch.cat([self.rows[domain], rows.float().cpu()])
        self.parents[domain] = torch.cat([self.parents[domain], parents])
        self.stats[domain] = leave_one_out_stats(
            self.rows[domain], self.parents[domain], self.rows[domain], self.parents[domain], self.k, self.metric
        )
        return parents

    def distances(self, queries: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each non-empty bank's k-NN distance of each query [Q]."""
        return {
            d: knn_distance(queries.float().cpu(), self.rows[d], self.k, self.metric)
            for d in DOMAINS
            if len(self.rows[d])
        }

    def scores(self, queries: torch.Tensor, normalise: bool) -> np.ndarray:
        """[Q] each query's score against the banks (see `combine`)."""
        return self.combine(self.distances(queries), normalise)

    def combine(self, distances: dict[str, torch.Tensor], normalise: bool) -> np.ndarray:
        """The smaller of the banks' distances; with `normalise`, of their z-scores (each bank's distance less
        the mean of its clips' leave-one-out distances, over their spread; a bank with too few clips borrows
        the other's statistics, and with none at all the raw distance stands)."""
        found = []
        for domain, distance in distances.items():
            if normalise:
                stats = self.stats[domain] or next((s for s in self.stats.values() if s), None) or (0.0, 1.0)
                distance = (distance - stats[0]) / stats[1]
            found.append(torch.nan_to_num(distance, nan=float("inf")))
        best = torch.stack(found).min(0).values
        return torch.where(torch.isinf(best), torch.full_like(best, float("nan")), best).numpy().astype(np.float64)

    def state(self) -> dict[str, torch.Tensor]:
        state = {}
        for domain in DOMAINS:
            state[f"bank.{domain}.rows"] = self.rows[domain]
            state[f"bank.{domain}.parents"] = self.parents[domain]
        return state

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], k: int, metric: str) -> ClipBanks:
        banks = cls(state["bank.source.rows"].shape[1], k, metric)
        for domain in DOMAINS:
            banks.rows[domain] = state[f"bank.{domain}.rows"].float().cpu()
            banks.parents[domain] = state[f"bank.{domain}.parents"].long().cpu()
            banks.stats[domain] = leave_one_out_stats(
                banks.rows[domain], banks.parents[domain], banks.rows[domain], banks.parents[domain], k, metric
            )
        return banks


class PatchBank:
    """Normal patch embeddings per frequency row [F, N, D] (unit length), at most `size` per row (a random
    share of each clip's columns: the lane's threshold is a quantile, and the nearest patch needs no more)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.rows: torch.Tensor | None = None
        self.generator = np.random.default_rng(seed)

    def add(self, patches: list[torch.Tensor], share: float = 1.0) -> None:
        """Add clips' patch grids (each [F, T, D], unit length) to the bank, `share` of each clip's columns at
        random; the bank keeps at most `size` columns (a random choice of them)."""
        columns = []
        for grid in patches:
            keep = max(1, round(share * grid.shape[1]))
            chosen = np.sort(self.generator.choice(grid.shape[1], min(keep, grid.shape[1]), replace=False))
            columns.append(grid[:, torch.from_numpy(chosen)].float().cpu())
        rows = torch.cat(([self.rows] if self.rows is not None else []) + columns, dim=1)
        if rows.shape[1] > self.size:
            rows = rows[:, torch.from_numpy(np.sort(self.generator.choice(rows.shape[1], self.size, replace=False)))]
        self.rows = rows

    def map(self, grid: torch.Tensor) -> np.ndarray:
        """[F, T] each patch's cosine distance to the nearest bank patch of its own frequency row (a patch
        is compared with what that band sounded like in normal clips, wherever in time). Columns go in
        chunks: an hour's recording would otherwise hold gigabytes of similarities at once."""
        grid = grid.float().cpu()
        nearest = [
            torch.einsum("ftd,fnd->ftn", grid[:, start : start + _COLUMNS], self.rows).amax(dim=2)
            for start in range(0, grid.shape[1], _COLUMNS)
        ]
        return (1.0 - torch.cat(nearest, dim=1)).clamp_min(0.0).numpy().astype(np.float32)
