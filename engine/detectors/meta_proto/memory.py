"""What `meta_proto` remembers of the normal clips once its encoder is trained, and how it scores with it.

Per normal clip: its domain, its metadata class (the tuple of its values in the tasks found, e.g.
"load_level=1|speed_level=2") and its segments' embeddings; per feature-map column of its segments, the
embeddings of that column's patches (one per frequency row). Enrolled target clips join both.

- Prototypes, per domain: each clip's mean embedding (`prototypes="clip"`), or the mean embedding of each
  metadata class of that domain (`"class"`; a clip without a class is its own prototype). A domain without
  clips borrows every clip's.
- A clip's score: each segment's distance to the nearest prototype of the clip's domain (or its negative
  log-likelihood under the prototypes: -log of the mean of exp(-d^2) over them), the mean over its segments,
  divided by the domain's scale: the mean score of that domain's normal clips left out of the prototypes one
  at a time (so a domain learnt from 3 clips and one learnt from 50 score on one scale).
- The map: each patch's distance to the nearest normal patch of its frequency row (of the clip's domain),
  divided by that row's typical left-out distance; the frame lane is the map's column mean.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.detectors.knn.bank import knn_distance, pairwise
from engine.jobs import Progress

DOMAINS = ("source", "target")
SCORES = ("distance", "nll")
PROTOTYPES = ("clip", "class")
SUPPORTS = ("both", "domain")
#: Segments measured at once in the left-out arithmetic.
_CHUNK = 4096
#: A domain's scale needs this many clips of its own; with fewer it takes every clip's.
MIN_SCALE_CLIPS = 2


def domain_of(domain: str | None) -> str:
    return domain if domain in DOMAINS else "source"


class Memory:
    """The normal clips' embeddings (segments [N, D] with the clip of each) and patch columns ([C, R, P]
    with the clip of each), their domains, classes, and which clips' scores are held out for the threshold."""

    def __init__(self, prototypes: str = "clip", score: str = "distance", support: str = "domain") -> None:
        self.prototype_mode, self.score_mode = prototypes, score
        #: Whose prototypes and patches a clip is measured against: its own domain's ("domain"), or both
        #: domains' ("both": a target clip near a source prototype is normal too).
        self.support = support
        self.ids: list[str] = []
        self.domains: list[str] = []
        self.classes: list[str] = []
        self.held: list[bool] = []
        #: Each clip's patch term (see `patch_term`) as scored left out of the memory; NaN where not measured.
        self.patch_terms: list[float] = []
        self.segments = torch.zeros(0, 0)
        self.segment_parent = torch.zeros(0, dtype=torch.long)
        self.columns = torch.zeros(0, 0, 0)
        self.column_parent = torch.zeros(0, dtype=torch.long)
        self.scale = {domain: 1.0 for domain in DOMAINS}
        self.row_scale = torch.ones(0)
        #: Per embedding dimension (and per patch row and dimension), the normal clips' mean and spread that
        #: distances are measured in (`standardise`); empty: raw distances.
        self.segment_stats = (torch.zeros(0), torch.ones(0))
        self.column_stats = (torch.zeros(0), torch.ones(0))
        self._prototypes: dict[str, torch.Tensor] = {}  # per domain, with no clip left out
        #: A memory of one clip: its raw held-out score measured without a self-match (`alone.alone_score`).
        self.alone_raw = float("nan")

    def add(
        self,
        clip_id: str,
        domain: str | None,
        key: str,
        segments: torch.Tensor,
        columns: torch.Tensor,
        held: bool,
        patch_term: float = float("nan"),
    ):
        """One clip: its segment embeddings [S, D] and patch columns [C, R, P]."""
        parent = len(self.ids)
        self._prototypes = {}
        self.ids.append(clip_id)
        self.domains.append(domain_of(domain))
        self.classes.append(key)
        self.held.append(held)
        self.patch_terms.append(patch_term)
        segments, columns = segments.float().cpu(), columns.float().cpu()
        if not len(self.segment_parent):
            self.segments, self.columns = segments[:0], columns[:0]
        self.segments = torch.cat([self.segments, segments])
        self.segment_parent = torch.cat([self.segment_parent, torch.full((len(segments),), parent)])
        self.columns = torch.cat([self.columns, columns])
        self.column_parent = torch.cat([self.column_parent, torch.full((len(columns),), parent)])

    def limit_columns(self, most: int, seed: int) -> None:
        """Keep at most `most` patch columns (drawn at random, every clip keeping at least one where it can)."""
        if len(self.columns) <= most:
            return
        order = torch.randperm(len(self.columns), generator=torch.Generator().manual_seed(seed))
        kept = torch.sort(order[:most]).values
        self.columns, self.column_parent = self.columns[kept], self.column_parent[kept]

    # -- prototypes and clip scores ------------------------------------------------------------------------
    def _clips_of(self, domain: str, exclude: int | None) -> list[int]:
        others = [i for i in range(len(self.ids)) if i != exclude]
        own = [i for i in others if self.domains[i] == domain] if self.support == "domain" else others
        # never the excluded clip itself: a memory of one clip is scored by `alone.alone_score`
        return own or others

    def prototypes(self, domain: str, exclude: int | None = None) -> torch.Tensor:
        """[P, D] the prototypes a clip of `domain` is measured against (without clip `exclude`)."""
        if exclude is None and domain in self._prototypes:
            return self._prototypes[domain]
        chosen = self._clips_of(domain, exclude)
        if not chosen:
            return self.segments[:0]
        groups: dict[object, list[int]] = {}
        for i in chosen:
            key = self.classes[i] if self.prototype_mode == "class" and self.classes[i] else i
            groups.setdefault(key, []).append(i)
        rows = []
        for members in groups.values():
            where = torch.isin(self.segment_parent, torch.tensor(members))
            rows.append(self.segments[where].mean(dim=0))
        found = torch.stack(rows)
        if exclude is None:
            self._prototypes[domain] = found
        return found

    def raw_score(
        self,
        segments: torch.Tensor,
        domain: str | None,
        exclude: int | None = None,
        prototypes: torch.Tensor | None = None,
    ) -> float:
        """The clip's score before its domain's scale: per segment the distance to the nearest prototype (or
        the negative log-likelihood under them), the mean over the segments. `prototypes`: these instead."""
        if prototypes is None:
            prototypes = self.prototypes(domain_of(domain), exclude)
        if not len(prototypes):
            return float("nan")
        mean, spread = self.segment_stats
        segments = segments.float().cpu()
        if len(mean):
            segments, prototypes = (segments - mean) / spread, (prototypes - mean) / spread
        distances = torch.cdist(segments, prototypes)
        if self.score_mode == "nll":
            per_segment = -torch.logsumexp(-distances.pow(2), dim=1) + float(np.log(len(prototypes)))
        else:
            per_segment = distances.min(dim=1).values
        return float(per_segment.mean())

    def clip_score(self, segments: torch.Tensor, domain: str | None, exclude: int | None = None) -> float:
        return self.raw_score(segments, domain, exclude) / self.scale[domain_of(domain)]

    def left_out_score(self, index: int, scaled: bool = True) -> float:
        """Clip `index` of the memory scored as an unseen clip: left out of the prototypes."""
        own = self.segments[self.segment_parent == index]
        if len(self.ids) == 1:
            raw = self.alone_raw
        else:
            raw = self.raw_score(own, self.domains[index], exclude=index)
        return raw / self.scale[self.domains[index]] if scaled else raw

    def learn_scales(self, normalise: bool, progress: Progress | None = None) -> None:
        """Each domain's scale: the mean left-out score of its clips (every clip's where it has too few)."""
        self.scale = {domain: 1.0 for domain in DOMAINS}
        if not normalise or len(self.ids) < 2:
            return
        raw = self.left_out_raws(progress)
        pooled = float(np.nanmean(raw)) if np.isfinite(raw).any() else 1.0
        for domain in DOMAINS:
            own = raw[[i for i, d in enumerate(self.domains) if d == domain]]
            own = own[np.isfinite(own)]
            value = float(own.mean()) if len(own) >= MIN_SCALE_CLIPS else pooled
            self.scale[domain] = max(value, 1e-6)

    def held_out_scores(self, patch_weight: float, progress: Progress | None = None) -> tuple[np.ndarray, list[str]]:
        """The held-out clips' left-out scores (with `patch_weight` times their patch terms), and their ids."""
        which = [i for i, held in enumerate(self.held) if held]
        raw = self.left_out_raws(progress)
        scale = np.array([self.scale[self.domains[i]] for i in which])
        terms = np.array([patch_weight * self.patch_terms[i] if patch_weight else 0.0 for i in which])
        return (raw[which] / scale + terms).astype(np.float64), [self.ids[i] for i in which]

    def _plans(self, clips: list[int]) -> list[tuple[list[int], list[int]]]:
        """(clips scored, clips whose prototypes they meet, each then left out of them), as `_clips_of`."""
        if self.support != "domain":
            return [(clips, clips)]
        plans = []
        for domain in DOMAINS:
            own = [i for i in clips if self.domains[i] == domain]
            if own:
                plans.append((own, own if len(own) >= 2 else clips))
        return plans

    def left_out_raws(self, progress: Progress | None = None) -> np.ndarray:
        """[N] every clip's raw score left out of the prototypes (`left_out_score` for all clips at once): the
        prototypes are built once from per-clip sums, and a clip's own one (its clip's, or its class's
        without it) is replaced per segment, so the cost grows as segments x prototypes."""
        count = len(self.ids)
        raw = np.full(count, np.nan)
        if count == 1:
            raw[0] = self.alone_raw
        if count < 2:
            return raw
        for scored, pool in self._plans(list(range(count))):
            raw[scored] = self._raws_against(scored, pool, progress)
        return raw

    def _raws_against(self, scored: list[int], pool: list[int], progress: Progress | None) -> np.ndarray:
        mean, spread = self.segment_stats
        segments = (self.segments - mean) / spread if len(mean) else self.segments
        parent, count = self.segment_parent, len(self.ids)
        clip_sum = torch.zeros(count, segments.shape[1]).index_add_(0, parent, segments)
        clip_count = torch.bincount(parent, minlength=count).double()
        keys: dict[object, int] = {}
        group = torch.full((count,), -1, dtype=torch.long)
        for i in pool:
            key = self.classes[i] if self.prototype_mode == "class" and self.classes[i] else ("clip", i)
            group[i] = keys.setdefault(key, len(keys))
        members = torch.tensor(pool)
        group_sum = torch.zeros(len(keys), segments.shape[1]).index_add_(0, group[members], clip_sum[members])
        group_count = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, group[members], clip_count[members])
        prototypes = group_sum / group_count[:, None].clamp_min(1).float()
        # each scored clip's own group without it: empty (no prototype) or its other members' mean
        rest = group_count[group[scored]] - clip_count[scored]
        left_out = (group_sum[group[scored]] - clip_sum[scored]) / rest[:, None].clamp_min(1).float()
        where = {clip: row for row, clip in enumerate(scored)}
        rows = torch.nonzero(torch.isin(parent, torch.tensor(scored))).flatten()
        per_segment = torch.zeros(len(rows), dtype=torch.float64)
        for start in range(0, len(rows), _CHUNK):
            if progress is not None:
                progress.check()
            chunk = rows[start : start + _CHUNK]
            own = torch.tensor([where[int(p)] for p in parent[chunk]])
            squared = pairwise(segments[chunk], prototypes, "l2")
            own_squared = (segments[chunk] - left_out[own]).pow(2).sum(1)
            own_squared = torch.where(rest[own] > 0, own_squared, torch.full_like(own_squared, float("inf")))
            squared.scatter_(1, group[scored][own][:, None], own_squared[:, None])
            if self.score_mode == "nll":
                kept = torch.isfinite(squared).sum(1).clamp_min(1)
                found = -torch.logsumexp(-squared, dim=1) + kept.double().log().float()
            else:
                found = squared.min(dim=1).values.sqrt()
            per_segment[start : start + len(chunk)] = found.double()
        clip_of = torch.tensor([where[int(p)] for p in parent[rows]])
        total = torch.zeros(len(scored), dtype=torch.float64).index_add_(0, clip_of, per_segment)
        return (total / torch.bincount(clip_of, minlength=len(scored)).clamp_min(1)).numpy()

    # -- maps ------------------------------------------------------------------------------------------------
    def bank(self, domain: str | None, exclude: int | None = None) -> torch.Tensor:
        """The patch columns a clip of `domain` meets (without clip `exclude`'s)."""
        domain = domain_of(domain)
        chosen = torch.tensor(self._clips_of(domain, exclude), dtype=torch.long)
        return self.columns[torch.isin(self.column_parent, chosen)]

    def patch_distances(
        self,
        columns: torch.Tensor,
        domain: str | None,
        exclude: int | None = None,
        bank: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[C, R] each patch's distance to the nearest normal patch of its row, over the row's scale; the
        clip's columns [C, R, P]. `bank`: these columns [B, R, P] instead of the memory's."""
        if bank is None:
            bank = self.bank(domain, exclude)
        if not len(bank):
            return torch.zeros(columns.shape[:2])
        columns = columns.float().cpu()
        mean, spread = self.column_stats
        if len(mean):
            columns, bank = (columns - mean) / spread, (bank - mean) / spread
        rows = [torch.cdist(columns[:, r], bank[:, r]).min(dim=1).values for r in range(columns.shape[1])]
        found = torch.stack(rows, dim=1)
        return found / self.row_scale if len(self.row_scale) == found.shape[1] else found

    def learn_standardisation(self, standardise: bool) -> None:
        """Measure distances in units of each dimension's spread over the normal clips (the segments' and,
        per frequency row, the patches'), so a dimension that barely moves in normal sound counts when it
        does move; or raw, without `standardise`."""
        self._prototypes = {}
        if not standardise or len(self.segments) < 2:
            self.segment_stats = self.column_stats = (torch.zeros(0), torch.ones(0))
            return
        self.segment_stats = (self.segments.mean(0), self.segments.std(0).clamp_min(1e-3))
        self.column_stats = (self.columns.mean(0), self.columns.std(0).clamp_min(1e-3))

    def learn_row_scales(self, most: int = 512, seed: int = 0) -> None:
        """Each frequency row's typical distance of a normal patch to the other clips' patches (a sample of
        at most `most` columns, each left out with its clip), floored at a thousandth of their mean."""
        self.row_scale = torch.ones(0)
        if len(self.ids) < 2 or not len(self.columns):
            return
        count = min(most, len(self.columns))
        sample = torch.randperm(len(self.columns), generator=torch.Generator().manual_seed(seed))[:count]
        columns, bank = self.columns[sample], self.columns
        mean, spread = self.column_stats
        if len(mean):
            columns, bank = (columns - mean) / spread, (bank - mean) / spread
        parents, found = self.column_parent[sample], torch.full((count, columns.shape[1]), float("nan"))
        for scored, pool in self._plans(list(range(len(self.ids)))):
            queries = torch.isin(parents, torch.tensor(scored))
            within = torch.isin(self.column_parent, torch.tensor(pool))
            for r in range(columns.shape[1]):  # each sampled patch left out with its clip (parents)
                found[queries, r] = knn_distance(
                    columns[queries, r], bank[within, r], 1, "l2", parents[queries], self.column_parent[within]
                ).sqrt()
        rows = found.nanmean(dim=0)
        self.row_scale = rows.clamp_min(1e-3 * float(rows.mean()) + 1e-12)

    # -- state -----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {
            "memory.segments": self.segments,
            "memory.segment_parent": self.segment_parent,
            "memory.columns": self.columns,
            "memory.column_parent": self.column_parent,
            "memory.domains": torch.tensor([DOMAINS.index(d) for d in self.domains], dtype=torch.long),
            "memory.held": torch.tensor(self.held, dtype=torch.bool),
            "memory.patch_terms": torch.tensor(self.patch_terms, dtype=torch.float64),
            "memory.scale": torch.tensor([self.scale[d] for d in DOMAINS], dtype=torch.float64),
            "memory.row_scale": self.row_scale,
            "memory.alone_raw": torch.tensor(self.alone_raw, dtype=torch.float64),
            "memory.segment_mean": self.segment_stats[0],
            "memory.segment_spread": self.segment_stats[1],
            "memory.column_mean": self.column_stats[0],
            "memory.column_spread": self.column_stats[1],
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        ids: list[str],
        classes: list[str],
        prototypes: str,
        score: str,
        support: str = "domain",
    ) -> Memory:
        memory = cls(prototypes, score, support)
        memory.segments, memory.segment_parent = state["memory.segments"], state["memory.segment_parent"]
        memory.columns, memory.column_parent = state["memory.columns"], state["memory.column_parent"]
        memory.domains = [DOMAINS[int(i)] for i in state["memory.domains"]]
        memory.held = [bool(h) for h in state["memory.held"]]
        memory.patch_terms = [float(v) for v in state["memory.patch_terms"]]
        memory.scale = {d: float(v) for d, v in zip(DOMAINS, state["memory.scale"], strict=True)}
        memory.row_scale = state["memory.row_scale"]
        memory.alone_raw = float(state.get("memory.alone_raw", torch.tensor(float("nan"))))
        memory.segment_stats = (state["memory.segment_mean"], state["memory.segment_spread"])
        memory.column_stats = (state["memory.column_mean"], state["memory.column_spread"])
        memory.ids, memory.classes = list(ids), list(classes)
        if (
            not len(memory.ids)
            == len(memory.classes)
            == len(memory.domains)
            == len(memory.held)
            == len(memory.patch_terms)
        ):
            raise ValueError("the memory's clips do not match its tensors")
        return memory


def patch_term(lane: np.ndarray) -> float:
    """What a clip's frame lane adds to its score: the mean of its mean and its maximum (a stationary fault
    lifts the whole lane, a transient one column)."""
    return 0.5 * float(np.mean(lane) + np.max(lane))
