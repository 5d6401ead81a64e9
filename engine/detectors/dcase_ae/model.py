"""The DCASE 2023-2025 Task 2 baseline auto-encoder as a plain torch module.

640 -> 128 -> 128 -> 128 -> 128 -> 8 -> 128 -> 128 -> 128 -> 128 -> 640, every hidden layer a Linear, a
BatchNorm1d (momentum 0.01, eps 1e-3) and a ReLU, the last layer linear: the organisers' `AENet`.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs, momentum=0.01, eps=1e-3), nn.ReLU()]


class AENet(nn.Module):
    def __init__(self, input_dim: int = 640, hidden: int = 128, latent: int = 8) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.encoder = nn.Sequential(
            *_block(input_dim, hidden),
            *_block(hidden, hidden),
            *_block(hidden, hidden),
            *_block(hidden, hidden),
            *_block(hidden, latent),
        )
        self.decoder = nn.Sequential(
            *_block(latent, hidden),
            *_block(hidden, hidden),
            *_block(hidden, hidden),
            *_block(hidden, hidden),
            nn.Linear(hidden, input_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x.view(-1, self.input_dim)))


def stack_frames(log_mel: torch.Tensor, frames: int) -> torch.Tensor:
    """[n_mels, T] -> [T - frames + 1, n_mels * frames]: each row is `frames` consecutive frames side by side,
    in the baseline's order (frame t first)."""
    n_mels, n_frames = log_mel.shape
    count = n_frames - frames + 1
    if count < 1:
        return log_mel.new_zeros((0, n_mels * frames))
    return torch.cat([log_mel[:, t : t + count] for t in range(frames)], dim=0).T.contiguous()
