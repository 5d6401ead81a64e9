"""The sound classifiers' torch modules: a plain spectrogram CNN and a residual CNN with optional SE or CBAM
attention. (The leak CNN is the leak detector's: `engine.detectors.leak.model`.)"""

from __future__ import annotations

import torch
from torch import nn


class SpectrogramCNN(nn.Module):
    """The baseline: four conv-BN-ReLU-pool blocks, global average pooling, dropout, a linear head."""

    def __init__(self, n_classes: int, width: int = 32) -> None:
        super().__init__()
        blocks, channels = [], 1
        for scale in (1, 2, 4, 4):
            blocks += [
                nn.Conv2d(channels, width * scale, 3, padding=1),
                nn.BatchNorm2d(width * scale),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width * scale
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.head(self.features(x)), None


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al., 2018): global pooling, a bottleneck, a sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al., 2018): average- and max-pooled descriptors through a
    shared bottleneck, then a 7x7 convolution over the channel-wise mean and max maps."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * channel
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, attention: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.attention = (
            {"se": SqueezeExcite, "cbam": CBAM}[attention](channels_out) if attention != "none" else nn.Identity()
        )
        self.skip = (
            nn.Identity()
            if channels_in == channels_out
            else nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.attention(self.body(x)) + self.skip(x))


class ResidualCNN(nn.Module):
    """A small ResNet over the spectrogram: a stem, four residual blocks (each followed by 2x2 pooling but
    the last), optional SE or CBAM attention in every block, global pooling and a linear head."""

    ATTENTION = ("none", "se", "cbam")

    def __init__(self, n_classes: int, width: int = 32, attention: str = "none") -> None:
        super().__init__()
        if attention not in self.ATTENTION:
            raise ValueError(f"attention must be one of {', '.join(self.ATTENTION)}")
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers, channels = [], width
        for index, scale in enumerate((1, 2, 4, 4)):
            layers.append(ResidualBlock(channels, width * scale, attention))
            channels = width * scale
            if index < 3:
                layers.append(nn.MaxPool2d(2))
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(channels, n_classes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.head(self.blocks(self.stem(x))), None


def sound_model(architecture: str, n_classes: int, attention: str = "none", width: int = 32) -> nn.Module:
    if architecture == "cnn":
        return SpectrogramCNN(n_classes, width)
    if architecture == "resnet":
        return ResidualCNN(n_classes, width, attention)
    raise ValueError(f"architecture must be cnn or resnet, not {architecture!r}")
