"""Episodic training of `meta_proto` through the shared training loop.

The loop trains on tensors in mini-batches; here each "input" is a dummy episode number and each batch one
episode. The model's forward draws the episode itself, from torch's global random-number generator, which the
loop seeds and keeps in its checkpoints: a resumed run draws the same episodes as an uninterrupted one.

- `EpisodeModel` (ProtoNet): an N-way K-shot episode of one task, Q queries per class; the prototypes are the
  mean embeddings of each class's K support segments, the logits the negative squared distances of the
  queries to them; the loss is their cross-entropy.
- `ReptileModel`: per outer step one task; a copy of the encoder takes `inner_steps` ProtoNet steps on it
  (Adam), and the loss is 0.5 * sum ||theta - theta'||^2 with theta' the adapted weights held fixed: its
  gradient is theta - theta', so the loop's plain SGD at rate `meta_step` moves the weights
  theta += meta_step * (theta' - theta). The batch-norm statistics move the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from engine.data.clip import Clip
from engine.detectors.metadata.network import ConvEmbedding
from engine.detectors.metadata.segments import ClipSegments
from engine.detectors.metadata.tasks import Task, metadata_tasks, pseudo_views


@dataclass
class EpisodeTask:
    """A task over the items of the pool: its name and, per class, the indices of its items."""

    name: str
    members: list[torch.Tensor]


class EpisodePool:
    """The training items (segments or views) [P, 1, M, T], kept on the CPU (only each episode's items go to
    `device`, so a long recording does not fill the device), and the tasks over them. A task keeps the
    classes that have items, and only when two or more do."""

    def __init__(
        self, items: torch.Tensor, labels: Sequence[tuple[str, torch.Tensor]], device: torch.device | None = None
    ) -> None:
        self.items = items
        self.device = device if device is not None else items.device
        self.tasks = []
        for name, label in labels:
            count = int(label.max()) + 1 if len(label) else 0
            members = [torch.nonzero(label == k).flatten() for k in range(count)]
            members = [m for m in members if len(m)]
            if len(members) >= 2:
                self.tasks.append(EpisodeTask(name, members))

    def episode(self, task: EpisodeTask, ways: int, shots: int, queries: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(support indices [N * K], query indices [N * Q], N) of one episode, class by class, drawn with
        torch's global generator. A class with fewer than K + Q items is drawn with replacement."""
        chosen = torch.randperm(len(task.members))[: min(ways, len(task.members))]
        support, query = [], []
        for k in chosen.tolist():
            members = task.members[k]
            need = shots + queries
            if len(members) >= need:
                pick = members[torch.randperm(len(members))[:need]]
            else:
                pick = members[torch.randint(len(members), (need,))]
            support.append(pick[:shots])
            query.append(pick[shots:])
        return torch.cat(support), torch.cat(query), len(chosen)


def episode_loss(
    encoder: ConvEmbedding, pool: EpisodePool, task: EpisodeTask, ways: int, shots: int, queries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N * Q, N], labels [N * Q]) of one ProtoNet episode of `task`."""
    support, query, n = pool.episode(task, ways, shots, queries)
    device = pool.device
    embedded = encoder(pool.items[torch.cat([support, query]).to(pool.items.device)].to(device)).float()
    prototypes = embedded[: n * shots].reshape(n, shots, -1).mean(dim=1)
    logits = -torch.cdist(embedded[n * shots :], prototypes).pow(2)
    return logits, torch.arange(n, device=device).repeat_interleave(queries)


class EpisodeModel(nn.Module):
    """ProtoNet training: `forward` (its input is the episode's number, unused) draws a task and an episode
    and returns (logits, labels)."""

    def __init__(self, encoder: ConvEmbedding, pool: EpisodePool, ways: int, shots: int, queries: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.pool, self.ways, self.shots, self.queries = pool, ways, shots, queries
        #: The task of each episode drawn, in order (what a test of the sampling reads).
        self.tasks_drawn: list[str] = []

    def forward(self, episode: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        task = self.pool.tasks[int(torch.randint(len(self.pool.tasks), (1,)))]
        self.tasks_drawn.append(task.name)
        return episode_loss(self.encoder, self.pool, task, self.ways, self.shots, self.queries)


def protonet_loss(outputs: tuple[torch.Tensor, torch.Tensor], targets: dict) -> dict[str, torch.Tensor]:
    logits, labels = outputs
    return {"episode": nn.functional.cross_entropy(logits, labels)}


@dataclass
class ReptileStep:
    """One outer step's forward: the meta loss 0.5 * sum ||theta - theta'||^2, the inner episodes' last loss,
    the adapted weights theta' and the task."""

    meta: torch.Tensor
    episode: torch.Tensor
    adapted: list[torch.Tensor]
    task: str


class ReptileModel(nn.Module):
    """Reptile's outer loop: `forward` adapts a copy of the encoder to one task in `inner_steps` ProtoNet
    steps (Adam at `inner_rate`) and returns the `ReptileStep`; `reptile_loss` is its meta loss."""

    def __init__(
        self,
        encoder: ConvEmbedding,
        pool: EpisodePool,
        ways: int,
        shots: int,
        queries: int,
        inner_steps: int,
        inner_rate: float,
        meta_step: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pool, self.ways, self.shots, self.queries = pool, ways, shots, queries
        self.inner_steps, self.inner_rate, self.meta_step = inner_steps, inner_rate, meta_step
        self.tasks_drawn: list[str] = []

    def forward(self, episode: torch.Tensor) -> ReptileStep:
        task = self.pool.tasks[int(torch.randint(len(self.pool.tasks), (1,)))]
        self.tasks_drawn.append(task.name)
        inner = copy.deepcopy(self.encoder)  # in the modes the loop set: a frozen branch stays in eval mode
        optimiser = torch.optim.Adam([p for p in inner.parameters() if p.requires_grad], lr=self.inner_rate)
        device = self.pool.device
        last = torch.zeros((), device=device)
        # The inner steps in full precision: they step without the loop's loss scaler.
        with torch.autocast(device.type, enabled=False):
            for _ in range(self.inner_steps):
                logits, labels = episode_loss(inner, self.pool, task, self.ways, self.shots, self.queries)
                loss = nn.functional.cross_entropy(logits, labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                last = loss.detach()
        with torch.no_grad():  # the batch-norm statistics take the same Reptile step as the weights
            for mine, theirs in zip(self.encoder.modules(), inner.modules(), strict=True):
                if not mine.training:  # frozen: its statistics stay as they are
                    continue
                for own, adapted in zip(mine.buffers(recurse=False), theirs.buffers(recurse=False), strict=True):
                    if own.is_floating_point():
                        own.add_(self.meta_step * (adapted - own))
                    else:
                        own.copy_(adapted)
        adapted = [p.detach() for p in inner.parameters()]
        pairs = zip(self.encoder.parameters(), adapted, strict=True)
        meta = sum(0.5 * (p.float() - a.float()).pow(2).sum() for p, a in pairs)
        return ReptileStep(meta, last, adapted, task.name)


def reptile_loss(outputs: ReptileStep, targets: dict) -> dict[str, torch.Tensor]:
    """The meta loss (its gradient theta - theta' is what the outer SGD steps on), and the inner episodes'
    last loss beside it for the curves (a constant: it adds nothing to the gradient)."""
    return {"meta": outputs.meta, "episode": outputs.episode}


def episode_pool(
    clips: Sequence[Clip],
    segments: dict[str, ClipSegments],
    tasks: Sequence[Task],
    pseudo: bool,
    per_clip: int,
    seed: int,
    device: torch.device,
) -> EpisodePool:
    """The pool of the clips' segments (at most `per_clip` of each, drawn with the seed, so a long recording
    does not multiply the memory a fit takes), or with `pseudo` their views (one class per clip), labelled
    by each task; the items stay on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for clip in clips:
        own = segments[clip.clip_id].segments
        if per_clip and len(own) > per_clip:
            own = own[torch.sort(torch.randperm(len(own), generator=generator)[:per_clip]).values]
        chosen.append(own)
    items = torch.cat(chosen)
    item_clip = torch.cat([torch.full((len(c),), i) for i, c in enumerate(chosen)])
    labels = []
    if pseudo:
        items, views_of = pseudo_views(items, generator)
        item_clip = item_clip[views_of]
        labels.append(("pseudo", item_clip))
    labels += [(t.name, torch.from_numpy(t.labels)[item_clip]) for t in tasks]
    return EpisodePool(items, labels, device)


def adapt(net: ConvEmbedding, clips: list[Clip], segments: dict[str, ClipSegments], config, device) -> bool:
    """`adapt_steps` ProtoNet steps of `net` on the clips (the target domain's trained normals), on their
    metadata and pseudo-classes; False (nothing done) with fewer than two clips."""
    if len(clips) < 2:
        return False
    tasks, _ = metadata_tasks(clips, config.min_class_clips, use_domain=False)
    pool = episode_pool(clips, segments, tasks, True, config.segments_per_clip, config.seed, device)
    model = EpisodeModel(net, pool, config.ways, config.shots, config.queries).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        for _ in range(config.adapt_steps):
            loss = protonet_loss(model(torch.zeros(1)), {})["episode"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    net.eval()
    return True
