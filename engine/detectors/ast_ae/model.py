"""The AST auto-encoder as plain torch modules: an Audio Spectrogram Transformer (transformers' `ASTModel`)
encodes a window of the Kaldi filter bank into patch tokens; the mean token of each frequency row, the rows
side by side projected to a few numbers, is the latent z; a small decoder rebuilds every 16 x 16 log-mel
patch from its own token squeezed through a narrow bottleneck, with z as context and a learnt embedding of
the patch's frequency row.

A window is the AST's input [W, 128] plus one more column that says which frames are real (1) and which are
padding (0), so the validity of every patch travels with the window through batching: a patch counts only
when its last frame is real. `windows_of` cuts a clip's filter bank into such windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.encoders import kaldi
from engine.encoders.ast import MEAN, STD


@dataclass
class Forward:
    """What one batch of windows gives: the rebuilt patches and the true ones [B, N, P*P], the latent
    z [B, b] and which patches hold audio [B, N] (N = rows x columns, frequency-major as the AST's tokens)."""

    reconstruction: torch.Tensor
    patches: torch.Tensor
    z: torch.Tensor
    valid: torch.Tensor

    def patch_errors(self) -> torch.Tensor:
        """[B, N] mean squared error of each patch."""
        return (self.reconstruction.float() - self.patches.float()).pow(2).mean(dim=-1)


def scratch_config(hidden_size: int, layers: int, heads: int, window_frames: int, stride: int):
    """An AST sized for a CPU, trained from scratch: `layers` x `hidden_size`, patches every `stride` mel bins
    and frames over windows of `window_frames` frames (the published AST: 12 x 768, stride 10, 1024 frames)."""
    from transformers import ASTConfig

    return ASTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden_size,
        max_length=window_frames,
        num_mel_bins=kaldi.N_MELS,
        patch_size=16,
        frequency_stride=stride,
        time_stride=stride,
    )


def grid_shape(config) -> tuple[int, int]:
    """(frequency rows, time columns) of one window's patch grid."""
    rows = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    columns = (config.max_length - config.patch_size) // config.time_stride + 1
    return rows, columns


class PatchDecoder(nn.Module):
    """The rows' mean tokens [F * D] -> z [b]; each token [D] -> its bottleneck [b]; both with the row's
    embedding -> the patch [P*P]."""

    def __init__(self, hidden: int, rows: int, patch_values: int, bottleneck: int, width: int) -> None:
        super().__init__()
        self.latent = nn.Linear(rows * hidden, bottleneck)
        self.squeeze = nn.Linear(hidden, bottleneck)
        self.row = nn.Parameter(torch.zeros(rows, width))
        self.expand = nn.Linear(2 * bottleneck, width)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, patch_values))

    def forward(self, tokens: torch.Tensor, z: torch.Tensor, rows: int) -> torch.Tensor:
        code = torch.cat([self.squeeze(tokens), z[:, None].expand(-1, tokens.shape[1], -1)], dim=-1)
        hidden = self.expand(code).unflatten(1, (rows, -1)) + self.row[:rows, None]
        return self.out(hidden).flatten(1, 2)


class AstAutoEncoder(nn.Module):
    """`encoder` (an `ASTModel`) and `decoder`: the two branches that train, freeze and log apart."""

    def __init__(self, encoder: nn.Module, bottleneck: int = 16, width: int = 256) -> None:
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.rows, self.columns = grid_shape(config)
        self.patch = config.patch_size
        self.strides = (config.frequency_stride, config.time_stride)
        self.window_frames = config.max_length
        self.decoder = PatchDecoder(config.hidden_size, self.rows, self.patch**2, bottleneck, width)

    def forward(self, windows: torch.Tensor) -> Forward:
        """`windows` [B, W, 128 + 1] (normalised filter bank, then the frame validity column)."""
        features, real = windows[..., :-1], windows[..., -1]
        tokens = self.encoder(input_values=features).last_hidden_state[:, 2:]  # after the CLS and distillation
        # The true patches, in the order of the AST's tokens: [B, 1, 128, W] unfolded frequency-major.
        patches = nn.functional.unfold(features.transpose(1, 2)[:, None], self.patch, stride=self.strides)
        patches = patches.transpose(1, 2)
        # A column is real when its last frame is; every row of that column shares it.
        last = torch.arange(tokens.shape[1] // self.rows, device=windows.device) * self.strides[1] + self.patch - 1
        valid = (real[:, last] > 0.5)[:, None, :].expand(-1, self.rows, -1).flatten(1)
        # z: each frequency row's mean token (over the patches holding audio), the rows side by side, projected.
        # A fault in one band moves its own row's mean; a mean over every row diluted it (see README).
        weights = valid.to(tokens.dtype).unflatten(1, (self.rows, -1))[..., None]
        per_row = (tokens.unflatten(1, (self.rows, -1)) * weights).sum(2) / weights.sum(2).clamp_min(1.0)
        z = self.decoder.latent(per_row.flatten(1))
        return Forward(self.decoder(tokens, z, self.rows), patches, z, valid)


def windows_of(fbank: torch.Tensor, window_frames: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip's filter bank [T, 128] as windows [n, W, 129] (normalised as the AST's input, zero-padded
    before normalising as the original; the last column marks real frames) and each window's first frame [n].
    Windows follow each other; a last piece shorter than one patch is dropped (a clip shorter than one patch
    is one padded window)."""
    count = len(fbank)
    starts = [s for s in range(0, max(1, count), window_frames) if s == 0 or count - s >= patch]
    windows = []
    for start in starts:
        piece = fbank[start : start + window_frames]
        padded = nn.functional.pad(piece, (0, 0, 0, window_frames - len(piece)))
        real = torch.zeros(window_frames, 1)
        real[: len(piece)] = 1.0
        windows.append(torch.cat([(padded - MEAN) / (2 * STD), real], dim=1))
    return torch.stack(windows), torch.tensor(starts)
