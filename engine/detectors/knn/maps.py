"""The k-NN detector's anomaly maps: each frame's distance to its nearest frames of the frame bank, split
over frequency, so a map column's mean is that frame's score (the map is in the units of the frame lane).

- `logmel` frames are log-mel bands averaged in pairs, z-scored: the squared L2 distance to the k nearest
  bank frames is a sum over dimensions, each dimension one pair of mel bands, so each band pair gets its own
  (never negative) share; the map averages neighbouring pairs to about 32 rows.
- Encoders with a patch grid (`ast`, `beats`) make a frame by averaging the grid's frequency rows (and
  layers), so the frame's offset from a bank frame is the mean of its rows' offsets, and the squared distance
  splits exactly into one term per row: (row - bank frame) . (frame - bank frame), averaged over the k
  nearest. A row pointing the same way as the whole frame's offset adds to the distance, one pointing
  against it takes away (a cell may be below 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.detectors.band_maps import BandMap, band_map, frame_spans, pool_rows
from engine.detectors.knn.bank import pairwise
from engine.encoders import Embedding, Encoder
from engine.encoders.logmel import LogMelEncoder

_CHUNK = 4096


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's mean squared L2 distance to its k nearest bank rows, as `knn_distance` computes it (the
    frame lane), and those rows' indices [Q, min(k, len(bank))]: one search gives the lane and its map."""
    k = min(k, len(bank))
    found = [
        torch.topk(pairwise(queries[start : start + _CHUNK], bank, "l2"), k, dim=1, largest=False)
        for start in range(0, len(queries), _CHUNK)
    ]
    distances = torch.cat([f.values for f in found])
    return distances.sum(1) / k, torch.cat([f.indices for f in found])


def band_shares(queries: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """[Q, D]: each dimension's share of a query's mean squared distance to its neighbours [Q, k, D], times
    D, so that a row's mean is the distance."""
    return (queries[:, None, :] - neighbours).pow(2).mean(dim=1) * queries.shape[1]


def row_shares(rows: torch.Tensor, queries: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """[Q, F]: for rows [Q, F, D] whose mean over F is the query [Q, D], each row's term (row - neighbour) .
    (query - neighbour), averaged over the query's neighbours [Q, k, D]: a result row's mean is the query's
    mean squared distance to them."""
    offsets = queries[:, None, :] - neighbours  # [Q, k, D]
    return (
        torch.einsum("qfd,qkd->qf", rows, offsets) / offsets.shape[1]
        - ((neighbours * offsets).sum(dim=2).mean(dim=1)[:, None])
    )


def lane_maps(
    encoder: Encoder,
    embeddings: Sequence[Embedding],
    durations: Sequence[float | None],
    frames: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    mean: torch.Tensor,
    scale: torch.Tensor,
) -> tuple[list[np.ndarray], list[BandMap | None]]:
    """Each clip's frame lane, and that lane split over frequency. `frames` are every clip's frames one clip
    after another, standardised (with `mean` and `scale`) as the frame `bank` is; `k` neighbours."""
    lane, indices = nearest(frames, bank, k)
    neighbours = bank[indices]  # [Q, k, D]
    cuts = np.cumsum([len(e.frames) for e in embeddings])[:-1]
    lanes = np.split(lane.cpu().numpy(), cuts)
    if isinstance(encoder, LogMelEncoder):
        shares = np.split(band_shares(frames, neighbours).cpu().numpy(), cuts)
        bands_per_share = encoder.config.n_mels // frames.shape[1]
        return lanes, [
            band_map(part, encoder.config, e.frame_times, duration, bands_per_share)
            for part, e, duration in zip(shares, embeddings, durations, strict=True)
        ]
    return lanes, patch_row_maps(embeddings, durations, frames, neighbours, mean, scale)


def patch_row_maps(
    embeddings: Sequence[Embedding],
    durations: Sequence[float | None],
    frames: torch.Tensor,
    neighbours: torch.Tensor,
    mean: torch.Tensor,
    scale: torch.Tensor,
) -> list[BandMap | None]:
    """Maps for encoders whose frames are the mean of a patch grid's rows; None for an embedding without
    its grid. `frames` are every clip's standardised frames, one clip after another, `neighbours` their
    nearest bank frames [Q, k, D]; `mean` and `scale` standardise them."""
    maps: list[BandMap | None] = []
    start = 0
    for embedding, duration in zip(embeddings, durations, strict=True):
        count = len(embedding.frames)
        queries, near = frames[start : start + count], neighbours[start : start + count]
        start += count
        if embedding.patches is None or embedding.freq_spans_hz is None:
            maps.append(None)
            continue
        grid = torch.as_tensor(embedding.patches.mean(axis=0), dtype=torch.float32, device=frames.device)
        rows = (grid.permute(1, 0, 2) - mean) / scale  # [T, F, D], each row standardised as frames are
        values, group = pool_rows(row_shares(rows, queries, near).cpu().numpy().T)
        spans = np.asarray(embedding.freq_spans_hz, dtype=np.float64)
        first = np.arange(len(values)) * group
        freq = np.stack([spans[first, 0], spans[first + group - 1, 1]], axis=1)
        times = np.asarray(embedding.frame_times, dtype=np.float64)
        step = float(np.median(np.diff(times))) if len(times) > 1 else float(np.ptp(embedding.time_spans_s[0]))
        maps.append(BandMap(values, freq, frame_spans(times, step, duration)))
    return maps
