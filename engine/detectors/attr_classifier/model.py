"""The attribute classifier as plain torch modules: the shared conv encoder (`ConvEmbedding`) turns a log-mel
segment into an embedding, and a margin head classifies the embedding into the section x attribute classes
of the normal training clips (or, without metadata, into pseudo-classes).

Two heads:
- `ArcFace` (Deng et al., CVPR 2019): logits s * cos(theta_j) between the normalised embedding and each
  class centre, with the additive angular margin m added to the true class's angle in the loss,
  s * cos(theta_y + m): the classes must be separated by an angle, which packs each class tightly.
- `SubClusterAdaCos` (Wilkinghoff, ICASSP 2021, after AdaCos by Zhang et al., CVPR 2019): `sub_clusters`
  centres per class, a class's logit the log-sum-exp of its centres', and no margin: the scale s is set
  from each batch (no gradient) so that the true class's probability rises where its angle is typical.

The forward pass returns (logits without margin [B, C], embeddings [B, D]): the training loop's accuracy reads
the first; the loss adds the margin with the labels. The head computes in float32 under mixed precision:
cosines near 1 and a scale of 30 lose too much in float16.
"""

from __future__ import annotations

import math

import torch
from torch import nn

HEADS = ("arcface", "adacos")


class ArcFace(nn.Module):
    """Class centres [C, D] compared by cosine; `loss` adds the additive angular margin."""

    def __init__(self, dim: int, classes: int, margin: float = 0.5, scale: float = 30.0) -> None:
        super().__init__()
        self.centres = nn.Parameter(nn.init.xavier_uniform_(torch.empty(classes, dim)))
        self.margin, self.scale = margin, scale

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            centres = nn.functional.normalize(self.centres.float(), dim=1)
            return nn.functional.normalize(embeddings.float(), dim=1) @ centres.T

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosines(embeddings)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = (logits / self.scale).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        true = cosine.gather(1, labels[:, None])
        theta = torch.acos(true)
        # Past pi - m the margin would turn the angle back towards the class: there the penalty falls
        # linearly instead (the usual ArcFace guard), so the logit keeps falling as the angle grows.
        shifted = torch.where(
            theta + self.margin < math.pi, torch.cos(theta + self.margin), true - self.margin * math.sin(self.margin)
        )
        logits = self.scale * cosine.scatter(1, labels[:, None], shifted)
        return nn.functional.cross_entropy(logits, labels)


class SubClusterAdaCos(nn.Module):
    """`sub_clusters` centres per class [C * K, D]; the adaptive scale lives in a buffer, so a checkpoint
    resumes with it."""

    def __init__(self, dim: int, classes: int, sub_clusters: int = 4) -> None:
        super().__init__()
        self.classes, self.sub_clusters = classes, sub_clusters
        self.centres = nn.Parameter(nn.init.xavier_uniform_(torch.empty(classes * sub_clusters, dim)))
        # AdaCos's fixed starting scale: sqrt(2) log(C - 1) (at least 1 for two classes)
        self.register_buffer("scale", torch.tensor(max(math.sqrt(2.0) * math.log(max(classes - 1, 1)), 1.0)))

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, C, K] cosine of each embedding to each class's sub-cluster centres."""
        with torch.autocast(embeddings.device.type, enabled=False):
            centres = nn.functional.normalize(self.centres.float(), dim=1)
            found = nn.functional.normalize(embeddings.float(), dim=1) @ centres.T
        return found.unflatten(1, (self.classes, self.sub_clusters))

    def _logits(self, cosines: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
        return torch.logsumexp(scale * cosines, dim=2)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        # the cosines ride along in the logits' scale: the loss recovers them with the scale it was given
        return self._logits(self.cosines(embeddings), self.scale)

    def loss_of(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosines = self.cosines(embeddings)
        if self.training:
            with torch.no_grad():  # AdaCos: s = log(mean non-target exp sum) / cos(median true angle, <= pi/4)
                others = torch.ones_like(cosines, dtype=torch.bool)
                others[torch.arange(len(labels)), labels] = False
                total = (torch.exp(self.scale * cosines) * others).sum(dim=(1, 2)).mean()
                true = cosines[torch.arange(len(labels)), labels].amax(dim=1).clamp(-1.0, 1.0)
                angle = torch.acos(true).median().clamp(max=math.pi / 4)
                self.scale.copy_(torch.log(total.clamp_min(1e-6)) / torch.cos(angle))
        return nn.functional.cross_entropy(self._logits(cosines, self.scale), labels)


class AttributeNet(nn.Module):
    """`encoder` (segment [B, 1, M, T] -> embedding [B, D]) and `heads` (one per classification task): the
    branches that train, freeze and log apart."""

    def __init__(self, encoder: nn.Module, heads: list[nn.Module]) -> None:
        super().__init__()
        self.encoder, self.heads = encoder, nn.ModuleList(heads)

    def forward(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the first head's logits [B, C], the embeddings [B, D])."""
        embeddings = self.encoder(segments)
        return self.heads[0](embeddings), embeddings

    def loss(self, outputs: tuple[torch.Tensor, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean over the heads of each head's margin loss on the items it has a class for (`labels`
        [B, H], -1: none)."""
        first, embeddings = outputs
        labels = targets["labels"]
        parts = []
        for index, head in enumerate(self.heads):
            taking = labels[:, index] >= 0
            if not bool(taking.any()):
                continue
            chosen, own = embeddings[taking], labels[taking, index]
            if isinstance(head, SubClusterAdaCos):
                parts.append(head.loss_of(chosen, own))
            else:
                parts.append(head.loss((first if index == 0 else head(embeddings))[taking], own))
        if not parts:  # no item of this batch has a class: nothing to learn from it
            return embeddings.sum() * 0.0
        return torch.stack(parts).mean()


def make_head(kind: str, dim: int, classes: int, margin: float, scale: float, sub_clusters: int) -> nn.Module:
    if kind == "adacos":
        return SubClusterAdaCos(dim, classes, sub_clusters)
    return ArcFace(dim, classes, margin, scale)
