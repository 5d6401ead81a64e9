"""What `attr_classifier` scores against: the k-NN back-end on clip embeddings (a source and a target bank,
optionally domain-normalised) and the bank of normal patch embeddings per frequency row that the frame lane
and the anomaly map come from.

The clip banks reuse the memory-bank arithmetic of `knn` (`engine.detectors.knn.bank`): cosine (or squared L2)
distance to the k nearest rows, and the leave-one-out statistics that domain normalisation z-scores each
bank's distances with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import torch

from engine.detectors.knn.bank import knn_distance, leave_one_out_stats

DOMAINS = ("source", "target")
#: Map columns compared with the patch bank at once.
_COLUMNS = 256


class ClipBanks:
    """Per domain: the normal clips' embeddings [N, D] and each row's clip number (`parent`), and the mean
    and spread of the clips' leave-one-out distances to their own bank (`stats`)."""

    def __init__(self, dim: int, k: int, metric: str) -> None:
        self.k, self.metric = k, metric
        self.rows = {d: torch.zeros((0, dim)) for d in DOMAINS}
        self.parents = {d: torch.zeros(0, dtype=torch.long) for d in DOMAINS}
        self._stats: dict[str, tuple[float, float] | None] = {}

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.parents.values())

    def add(self, domain: str | None, rows: torch.Tensor) -> torch.Tensor:
        """Add clips' embeddings to the bank of `domain` (None: source); returns their parent numbers. The
        bank's statistics are computed again when next asked for (once however many clips join)."""
        domain = domain if domain in DOMAINS else "source"
        parents = torch.arange(self.count, self.count + len(rows))
        self.rows[domain] = torch.cat([self.rows[domain], rows.float().cpu()])
        self.parents[domain] = torch.cat([self.parents[domain], parents])
        self._stats.pop(domain, None)
        return parents

    @property
    def stats(self) -> dict[str, tuple[float, float] | None]:
        """Per domain: the mean and spread of its clips' leave-one-out distances to their own bank (None
        below three clips); computed when asked for, since the last clips joined."""
        for domain in DOMAINS:
            if domain not in self._stats:
                self._stats[domain] = leave_one_out_stats(
                    self.rows[domain],
                    self.parents[domain],
                    self.rows[domain],
                    self.parents[domain],
                    self.k,
                    self.metric,
                )
        return self._stats

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
        return banks


class PatchBank:
    """Normal patch embeddings per frequency row [F, N, D] (unit length), at most `size` per row (a random
    share of the columns: the lane's threshold is a quantile, and the nearest patch needs no more). Which
    columns are kept follows from the seed, the clips' ids and the bank's size, so a saved and loaded model
    enrols the same columns as the fitted one did."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self.rows: torch.Tensor | None = None

    def _generator(self, ids: Sequence[str]) -> np.random.Generator:
        held = 0 if self.rows is None else self.rows.shape[1]
        digest = hashlib.sha256(json.dumps([self.seed, held, list(ids)]).encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def add(self, patches: list[torch.Tensor], ids: Sequence[str], share: float = 1.0) -> None:
        """Add clips' patch grids (each [F, T, D], unit length; `ids` the clips') to the bank, `share` of each
        clip's columns at random; the bank keeps at most `size` columns (a random choice of them)."""
        generator = self._generator(ids)
        columns = []
        for grid in patches:
            keep = max(1, round(share * grid.shape[1]))
            chosen = np.sort(generator.choice(grid.shape[1], min(keep, grid.shape[1]), replace=False))
            columns.append(grid[:, torch.from_numpy(chosen)].float().cpu())
        rows = torch.cat(([self.rows] if self.rows is not None else []) + columns, dim=1)
        if rows.shape[1] > self.size:
            rows = rows[:, torch.from_numpy(np.sort(generator.choice(rows.shape[1], self.size, replace=False)))]
        self.rows = rows

    def map(self, grid: torch.Tensor) -> np.ndarray:
        """[F, T] each patch's cosine distance to the nearest bank patch of its own frequency row (a patch
        is compared with what that band sounded like in normal clips, wherever in time)."""
        return nearest_map(grid, self.rows)


def nearest_map(grid: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
    """[F, T] each patch of `grid` [F, T, D]: its cosine distance to the nearest of `rows` [F, N, D] in its own
    frequency row. Columns go in chunks: an hour's recording would otherwise hold gigabytes of similarities
    at once."""
    grid = grid.float().cpu()
    nearest = [
        torch.einsum("ftd,fnd->ftn", grid[:, start : start + _COLUMNS], rows).amax(dim=2)
        for start in range(0, grid.shape[1], _COLUMNS)
    ]
    return (1.0 - torch.cat(nearest, dim=1)).clamp_min(0.0).numpy().astype(np.float32)
