"""The patch memory's global term: how far a clip's band statistics lie from the normal training clips'.

A max-cosine patch match finds a near-identical memory patch for every test patch of a stationary fault (an
unbalanced fan, a worn bearing: the whole recording changes a little, in level per band, not in shape), so
the patch term alone scored below chance on a real fan. The global term sees that change: per mel band, the
mean level in dB relative to the clip's own mean level (the spectral balance; a louder or quieter recording
of the same machine keeps it) and the spread of the level over time. Each statistic is standardised by its
spread over the bank's clips, and a clip's distance is the squared L2 distance to its nearest bank clip
(k = 1: with a few target clips and many source clips, the nearest clip is one of the clip's own domain).

The patch term and the global term are then put on one scale, each as a z-score against its own held-out
training-normal scores of the clip's domain (pooled where a domain has fewer than 3), and added
(`global_weight` weighs the global term; 0 leaves the patch term alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache
from engine.audio.features import LogMelConfig
from engine.data.clip import Clip
from engine.detectors.knn.bank import knn_distance
from engine.detectors.normalisation import MIN_PER_DOMAIN, score_stats
from engine.jobs import Progress

#: The features the band statistics are read from: the log-mel spectrogram the `logmel` encoder uses, whatever
#: encoder makes the patches (its cache entry is then shared).
FEATURES = LogMelConfig()
#: Nearest bank clips a clip's global distance is averaged over.
NEIGHBOURS = 1
#: At most this many normal training clips make the bank (the support and the threshold clips first).
BANK_CLIPS = 256
#: Lower bound of a statistic's spread (dB), so a band that never changes does not divide by nothing.
MIN_SPREAD_DB = 0.01


def band_statistics(
    cache: FeatureCache,
    clips: Sequence[Clip],
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """clip_id -> [2 * n_mels]: each band's mean level relative to the clip's mean level (dB), then each
    band's standard deviation over time (dB), for every clip that could be read."""
    features = cache.features(clips, FEATURES, progress)
    out = {}
    for clip_id, mel in features.items():
        mean = mel.mean(axis=1)
        out[clip_id] = np.concatenate([mean - mean.mean(), mel.std(axis=1)]).astype(np.float32)
    return out


def z_stats(scores: torch.Tensor) -> torch.Tensor:
    """[2] mean and spread of held-out scores, what a term is z-scored against (the normalised scores' rule,
    spread floored); 0 and 1 when there are none."""
    stats = score_stats(scores.detach().cpu().numpy())
    return torch.tensor(stats[:2] if stats is not None else [0.0, 1.0], dtype=torch.float64)


def domain_z_stats(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[3, 2] `z_stats` of held-out scores: of all of them, of the source clips', of the target clips'
    (`target` [N] says which); a domain with fewer than MIN_PER_DOMAIN scores gets the pooled row, as for
    normalised scores. Target recordings are
    noisier and score higher: one pooled scale flagged 29 % of unseen target normals and 2 % of source ones."""
    pooled = z_stats(scores)
    rows = [pooled]
    for mine in (~target, target):
        rows.append(z_stats(scores[mine]) if int(mine.sum()) >= MIN_PER_DOMAIN else pooled)
    return torch.stack(rows)


class GlobalTerm:
    """The bank of normal clips' band statistics and what distances to it are measured with."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bank = torch.zeros((0, 0), device=device)  # [N, D] band statistics, raw
        self.centre = self.scale = torch.zeros(0, device=device)  # [D] standardisation
        self.held_out = torch.zeros(0, device=device)  # [N] each bank clip's distance to the rest of the bank

    def learn(self, bank: torch.Tensor) -> None:
        """Take `bank` [N, D] as the bank; learn the standardisation and each clip's held-out distance."""
        self.bank = bank.to(self.device, torch.float32)
        self.centre = self.bank.mean(0)
        self.scale = (
            self.bank.std(0, unbiased=False).clamp_min(MIN_SPREAD_DB) if len(bank) > 1 else torch.ones_like(self.centre)
        )
        self.held_out = self._held_out()

    def _held_out(self) -> torch.Tensor:
        """[N] each bank clip's distance to the rest of the bank, standardised by the rest of the bank alone,
        as a test clip is. Standardised by spreads it helped to measure, a clip lies closer to the bank than
        any unseen clip does (on 8 clips of 256 statistics, unseen normals scored 4 standard deviations above
        the held-out scores, and most were flagged)."""
        x, n = self.bank, len(self.bank)
        if n < 3:  # one clip left: no spread to measure without it
            parents = torch.arange(n, device=self.device)
            standard = self._standard(x)
            return knn_distance(standard, standard, NEIGHBOURS, "l2", parents, parents)
        mean = (x.sum(0) - x) / (n - 1)  # [N, D]: the bank's mean and variance without each clip
        variance = ((x * x).sum(0) - x * x) / (n - 1) - mean * mean
        weight = 1.0 / variance.clamp_min(MIN_SPREAD_DB**2)
        # sum_d w_id (x_id - x_jd)^2, expanded into products
        distances = (weight * x * x).sum(1, keepdim=True) - 2.0 * (weight * x) @ x.T + weight @ (x * x).T
        distances.fill_diagonal_(float("inf"))
        nearest = torch.topk(distances, min(NEIGHBOURS, n - 1), dim=1, largest=False).values
        return nearest.clamp_min(0.0).mean(1)

    def distance(self, statistics: torch.Tensor) -> torch.Tensor:
        """[Q] distance of each clip's band statistics [Q, D] to the bank."""
        return knn_distance(
            self._standard(statistics.to(self.device, torch.float32)), self._standard(self.bank), NEIGHBOURS, "l2"
        )

    def _standard(self, rows: torch.Tensor) -> torch.Tensor:
        return (rows - self.centre) / self.scale

    def state(self) -> dict[str, torch.Tensor]:
        return {"global_bank": self.bank}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.learn(state["global_bank"])
