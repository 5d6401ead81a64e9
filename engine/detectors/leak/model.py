"""The leak detector's torch module: a small CNN over short 32-band mel segments, binary or five classes with
an auxiliary leak-vs-rest head, and the leak probability it gives each segment."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LeakCNN(nn.Module):
    """Input [B, 1, 32 mel bands, W frames]. conv 1->32, conv 32->64, max-pool (2,1), conv 64->128,
    max-pool (2,1), adaptive average pool to (16,1), flatten 2048, dropout 0.25, linear 2048->256, then the
    class head (and, with `aux_head`, one leak-vs-rest logit). Returns (class logits, aux logit or None)."""

    def __init__(self, n_classes: int, aux_head: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d((2, 1)),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d((2, 1)),
            nn.AdaptiveAvgPool2d((16, 1)),
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(2048, 256), nn.ReLU(inplace=True))
        self.head = nn.Linear(256, n_classes)
        self.aux = nn.Linear(256, 1) if aux_head else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden = self.embed(self.features(x))
        return self.head(hidden), (self.aux(hidden).squeeze(1) if self.aux is not None else None)


def leak_probabilities(
    net: nn.Module, inputs: torch.Tensor, leak_index: int, device: torch.device, batch: int = 4096
) -> tuple[np.ndarray, torch.Tensor]:
    """(leak probability per segment, class logits) of a LeakCNN. With an auxiliary head the two heads'
    leak probabilities are averaged."""
    if not len(inputs):
        return np.zeros(0), torch.zeros(0, 1)
    probabilities, all_logits = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch):
            logits, aux = net(inputs[start : start + batch].to(device))
            logits = logits.float()
            p = torch.softmax(logits, 1)[:, leak_index]
            if aux is not None:
                p = (p + torch.sigmoid(aux.float())) / 2
            probabilities.append(p.cpu())
            all_logits.append(logits.cpu())
    return torch.cat(probabilities).numpy(), torch.cat(all_logits)
