"""The small conv encoder the metadata detectors train on log-mel segments, sized for a CPU.

Four blocks (3 x 3 conv, batch norm, ReLU; 2 x 2 max pooling after each of the first three) turn a segment
[B, 1, M, T] into a feature map [B, C, M / 8, T / 8]: one embedding per patch of 8 mel bands x 8 frames,
from which a detector draws its anomaly map (rows: frequency, columns: time). The segment's embedding is the
mean and the max of that map over its patches, projected to `dim` numbers; with `frequency_rows` R > 0, the
mean and max over time of each of R frequency bands of the map, side by side, projected: which band holds
what survives into the embedding (a global pooling keeps what is there, not where: a stationary fault that
lifts one band looks like a normal clip whose band sits elsewhere). A batch norm on the input puts the
log-mel decibels on a learnt scale, so no statistics of the training clips need keeping beside it.
"""

from __future__ import annotations

import torch
from torch import nn

#: Each block's output channels; the first three halve the map in both axes.
CHANNELS = (16, 32, 64, 128)
POOLED_BLOCKS = 3


class ConvEmbedding(nn.Module):
    """[B, 1, M, T] log-mel segments -> [B, dim] embeddings (`forward`) or [B, C, M', T'] per-patch
    embeddings (`feature_map`)."""

    def __init__(self, dim: int = 128, channels: tuple[int, ...] = CHANNELS, frequency_rows: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.frequency_rows = frequency_rows
        self.input_norm = nn.BatchNorm2d(1)
        blocks, previous = [], 1
        for index, width in enumerate(channels):
            layers = [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if index < POOLED_BLOCKS:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.patch_dim = previous
        self.project = nn.Linear(2 * previous * max(frequency_rows, 1), dim)

    @staticmethod
    def grid(n_mels: int, frames: int) -> tuple[int, int]:
        """(rows, columns) of the feature map of a segment of `n_mels` bands x `frames` frames."""
        rows, columns = n_mels, frames
        for _ in range(POOLED_BLOCKS):
            rows, columns = -(-rows // 2), -(-columns // 2)
        return rows, columns

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, M, T] -> [B, C, M', T'] per-patch embeddings."""
        return self.blocks(self.input_norm(x))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """A feature map [B, C, M', T'] -> segment embeddings [B, dim]."""
        if self.frequency_rows:
            size = (self.frequency_rows, 1)
            pooled = [nn.functional.adaptive_avg_pool2d(fmap, size), nn.functional.adaptive_max_pool2d(fmap, size)]
            return self.project(torch.cat(pooled, dim=1).flatten(1))
        flat = fmap.flatten(2)
        return self.project(torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))
