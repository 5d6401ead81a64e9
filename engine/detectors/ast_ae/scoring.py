"""What `ast_ae` reads from its trained network: per clip the latents of its windows, its reconstruction
error and the per-patch error map on the AST grid; the latent statistics that whiten z per domain; the
robust scale of the reconstruction error; and per-frame errors for `earmark debug recon`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.ast_ae.model import AstAutoEncoder, Forward
from engine.device import autocast
from engine.encoders import kaldi

DOMAINS = ("source", "target")
#: Added to each dimension's variance, as a share of the pooled mean variance, so a dimension the few clips
#: of a domain hardly move cannot blow the whitened distance up.
VARIANCE_FLOOR = 0.01

T = TypeVar("T")


@dataclass
class ClipResult:
    """One clip through the network: z per window [n, b] and the error map [F, T] (each patch's mean squared
    error) with its rows' Hz and columns' seconds."""

    z: np.ndarray
    map: np.ndarray
    freq_spans_hz: np.ndarray
    time_spans_s: np.ndarray

    @property
    def error(self) -> float:
        """The clip's reconstruction error: the mean over its patches (every one holds audio)."""
        return float(self.map.mean())

    @property
    def lane(self) -> np.ndarray:
        return self.map.mean(axis=0).astype(np.float32)

    def per_row(self, scale: np.ndarray) -> ClipResult:
        """The same with each map row divided by `scale` [F] (the training clips' mean error of that row)."""
        return dataclasses.replace(self, map=(self.map / scale[:, None]).astype(np.float32))


def row_scale(results: Sequence[ClipResult]) -> np.ndarray:
    """[F] each map row's mean error over the clips' patches, so a row the network always rebuilds badly (a
    restless band) counts no more than a quiet one (floored at a thousandth of the overall mean)."""
    rows = np.concatenate([r.map for r in results], axis=1).mean(axis=1)
    return np.maximum(rows, 1e-3 * float(rows.mean()) + 1e-12)


def _run(model: AstAutoEncoder, windows: torch.Tensor, batch: int, keep: Callable[[Forward], T]) -> list[T]:
    """`keep` of each batch's forward pass: only what it keeps outlives the batch, so a fit's thousands of
    windows never hold their reconstructions on the device all at once."""
    device = next(model.parameters()).device
    model.eval()
    found = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch):
            with autocast(device):
                output = model(windows[start : start + batch].to(device))
            found.append(keep(output))
    return found


def _latents_and_errors(output: Forward) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What a clip's result needs of a batch, on the CPU: z, each patch's error and which patches hold audio."""
    return output.z.float().cpu(), output.patch_errors().float().cpu(), output.valid.cpu()


def clip_results(model: AstAutoEncoder, clips: Sequence[Clip], windows: dict, batch: int) -> dict[str, ClipResult]:
    """clip_id -> `ClipResult` for each clip in `windows` (clip_id -> (windows, first frames)); the windows of
    all clips run through the network in batches."""
    clips = [c for c in clips if c.clip_id in windows]
    if not clips:
        return {}
    kept = _run(model, torch.cat([windows[c.clip_id][0] for c in clips]), batch, _latents_and_errors)
    z, errors, valid = (torch.cat(parts).numpy() for parts in zip(*kept, strict=True))
    rows, (f_stride, t_stride), patch = model.rows, model.strides, model.patch
    results, first = {}, 0
    for clip in clips:
        starts = windows[clip.clip_id][1].tolist()
        last = first + len(starts)
        grid_parts, spans = [], []
        for index, start in zip(range(first, last), starts, strict=True):
            columns = int(valid[index].reshape(rows, -1)[0].sum())
            grid_parts.append(errors[index].reshape(rows, -1)[:, :columns])
            spans.append(kaldi.column_spans_s(columns, patch, t_stride, start))
        results[clip.clip_id] = ClipResult(
            z[first:last],
            np.ascontiguousarray(np.concatenate(grid_parts, axis=1), dtype=np.float32),
            kaldi.row_spans_hz(rows, patch, f_stride),
            np.concatenate(spans).astype(np.float32),
        )
        first = last
    return results


def frame_errors(model: AstAutoEncoder, windows: torch.Tensor, starts: torch.Tensor, batch: int) -> np.ndarray:
    """[frames] mean squared reconstruction error of each frame of a clip that a patch covers: every patch's
    squared errors put back on the spectrogram (overlapping patches averaged), then the mean over mel bins."""
    patch, strides = model.patch, model.strides

    def per_frame_errors(output: Forward) -> list[np.ndarray]:
        squared = (output.reconstruction.float() - output.patches.float()).pow(2).transpose(1, 2)  # [B, P*P, N]
        size = (kaldi.N_MELS, model.window_frames)
        placed = torch.nn.functional.fold(squared, size, patch, stride=strides)
        cover = torch.nn.functional.fold(torch.ones_like(squared), size, patch, stride=strides)
        per_frame = (placed.sum(dim=2) / cover.sum(dim=2).clamp_min(1.0))[:, 0]  # [B, W]
        covered = cover[:, 0].amax(dim=1) > 0  # [B, W]
        found = []
        for row, valid, ok in zip(per_frame, output.valid, covered, strict=True):
            columns = int(valid.reshape(model.rows, -1)[0].sum())
            end = (columns - 1) * strides[1] + patch  # frames the real columns cover
            found.append(row[:end][ok[:end]].cpu().numpy())
        return found

    frames = [row for rows in _run(model, windows, batch, per_frame_errors) for row in rows]
    return np.concatenate(frames).astype(np.float32) if frames else np.zeros(0, dtype=np.float32)


def robust_scale(errors: Sequence[float]) -> tuple[float, float]:
    """(median, median absolute deviation) of the training clips' reconstruction errors; the MAD is kept above
    5 % of the median, so identical (or single) errors never divide by 0."""
    values = np.asarray(errors, dtype=np.float64)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return median, max(mad, 0.05 * abs(median), 1e-12)


class LatentStats:
    """Per domain and pooled ("all"): how many clips and windows, and the sums of z and z squared, so that
    enrolled clips add to them."""

    def __init__(self) -> None:
        self.stats: dict[str, list] = {}

    @classmethod
    def of(cls, latents: Sequence[tuple[str | None, np.ndarray]]) -> LatentStats:
        stats = cls()
        for domain, z in latents:
            stats.add(domain, z)
        return stats

    def add(self, domain: str | None, z: np.ndarray) -> None:
        z = np.asarray(z, dtype=np.float64)
        for key in ("all", domain) if domain in DOMAINS else ("all",):
            entry = self.stats.setdefault(key, [0, 0, np.zeros(z.shape[1]), np.zeros(z.shape[1])])
            entry[0] += 1
            entry[1] += len(z)
            entry[2] = entry[2] + z.sum(axis=0)
            entry[3] = entry[3] + (z**2).sum(axis=0)

    def _moments(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        _, windows, total, squares = self.stats[key]
        mean = total / windows
        return mean, np.maximum(squares / windows - mean**2, 0.0)

    def distance(self, z: np.ndarray, domain: str | None, min_clips: int) -> np.ndarray:
        """[n] M(z) of each window: the L2 norm of (z - mean) / std per dimension, with the statistics of the
        clip's domain where that domain has at least `min_clips` clips, else the pooled ones."""
        key = domain if domain in self.stats and self.stats[domain][0] >= min_clips else "all"
        mean, variance = self._moments(key)
        floor = VARIANCE_FLOOR * float(self._moments("all")[1].mean()) + 1e-12
        return np.linalg.norm((np.asarray(z, dtype=np.float64) - mean) / np.sqrt(variance + floor), axis=1)

    def state(self) -> dict[str, torch.Tensor]:
        state = {}
        for key, (clips, windows, total, squares) in self.stats.items():
            state[f"latent.{key}.counts"] = torch.tensor([clips, windows], dtype=torch.int64)
            state[f"latent.{key}.sum"] = torch.from_numpy(total)
            state[f"latent.{key}.squares"] = torch.from_numpy(squares)
        return state

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LatentStats:
        stats = cls()
        for key in ("all", *DOMAINS):
            if f"latent.{key}.counts" in state:
                clips, windows = (int(v) for v in state[f"latent.{key}.counts"])
                stats.stats[key] = [
                    clips,
                    windows,
                    state[f"latent.{key}.sum"].double().numpy(),
                    state[f"latent.{key}.squares"].double().numpy(),
                ]
        if "all" not in stats.stats:
            raise KeyError("latent.all")
        return stats
