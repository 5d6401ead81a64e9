"""`patch_memory`: training-free few-shot detection with an anomaly map over time and frequency.
See README.md in this folder for the method, its settings and its figures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.base import Detection, Detector, DetectorConfig, TrainingScores
from engine.detectors.patch_memory.global_term import BANK_CLIPS, GlobalTerm, band_statistics, domain_z_stats
from engine.detectors.patch_memory.memory import max_cosine
from engine.encoders import Embedding, make_encoder
from engine.errors import EarmarkError
from engine.jobs import Progress

SUPPORTS = ("target", "target+source")
#: Clips encoded at once when scoring.
BATCH = 8
#: With fewer normal training clips outside the support than this, the support's own scores are computed
#: strictly leave-one-out (memory and row statistics without the clip).
MIN_UNSEEN = 3


@dataclass
class PatchMemoryConfig(DetectorConfig):
    encoder: str = "logmel"
    #: Encoder layers whose maps are averaged (1-based, -1 the last); empty: the encoder's default.
    layers: tuple[int, ...] = ()
    #: Whose patches make the memory: the target-domain and the source-domain normal training clips, taking
    #: turns (`target+source`), or the target clips alone (`target`), filled up with source clips to
    #: `min_support`. A target-only memory scores every source clip as a stranger.
    support: str = "target+source"
    #: With `support=target` and fewer target clips than this, source clips fill the support up to it.
    min_support: int = 3
    #: At most this many support clips.
    max_support: int = 32
    #: The clip score is the mean of the map values at or above this quantile of the map.
    quantile: float = 0.99
    #: Standardise each map row by how far the support's own patches of that row lie from the rest of the
    #: memory (leave one clip out), so a row that is always restless does not look anomalous.
    row_norm: bool = True
    #: Besides the support (left out one clip at a time), up to this many other normal training clips are
    #: scored to learn the decision threshold, so the threshold speaks for every training normal.
    threshold_clips: int = 16
    #: Memory budget for one block of similarities, in MB: bounds the peak memory of scoring.
    chunk_mb: float = 64.0
    #: A query patch is compared only with memory patches at most this many grid rows (frequency bands)
    #: away from its own; -1: with every memory patch, wherever its band (the paper's search).
    band_window: int = 1
    #: Weight of the global term (band statistics against the training normals', see global_term.py) beside
    #: the patch term in the clip score, both as z-scores against their held-out training scores; 0: off.
    global_weight: float = 2.0

    def __post_init__(self) -> None:
        try:  # `--set layers=4,8,12` arrives as text
            self.layers = tuple(int(layer) for layer in self.layers)
        except ValueError:
            raise EarmarkError(
                f"patch_memory: layers must be whole numbers such as 4,8,12 (or -1 for the last), "
                f"not {','.join(map(str, self.layers))}"
            ) from None
        if self.support not in SUPPORTS:
            raise EarmarkError(f"patch_memory: support must be one of {', '.join(SUPPORTS)}, not {self.support!r}")
        if not 0.0 <= self.quantile <= 1.0:
            raise EarmarkError("patch_memory: quantile must lie between 0 and 1")
        if self.chunk_mb <= 0 or self.min_support < 2 or self.max_support < self.min_support:
            raise EarmarkError("patch_memory: chunk_mb must be above 0, and 2 <= min_support <= max_support")
        if self.global_weight < 0:
            raise EarmarkError("patch_memory: global_weight must be 0 (off) or more")


class PatchMemoryDetector(Detector):
    key = "patch_memory"
    title = "Patch memory (training-free)"
    fit_cost = 0.0015  # measured: engine.fit_estimate
    Config = PatchMemoryConfig
    config: PatchMemoryConfig

    def __init__(self, config: PatchMemoryConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.encoder = make_encoder(self.config.encoder, self.cache, layers=self.config.layers)
        self.memory: torch.Tensor | None = None  # [L, N, D] unit vectors: every support patch of every layer
        self.owner = self.row = self.column = None  # [N] support clip, grid row and column of each patch
        self.row_mean = self.row_scale = None  # [F] the support's leave-one-out map statistics per row
        self.clips = 0
        self.other_scores = torch.zeros(0)  # patch scores of the other training normals, from fitting
        self.global_term = GlobalTerm(self.device)
        # [2] mean and spread of the held-out patch and global scores; None: a model saved before the global
        # term, whose clip score is the raw patch score its threshold was learnt on
        self.patch_stats: torch.Tensor | None = None
        self.global_stats: torch.Tensor | None = None
        self.held_target = torch.zeros(0, dtype=torch.bool)  # [support + threshold clips] which are target clips
        self.support_ids: list[str] | None = []  # whose the support's and the other scores are (None: unknown)
        self.other_ids: list[str] | None = []

    # -- fitting ------------------------------------------------------------------------------------------
    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        support = self._choose_support(normals)
        self.memory = None
        self.clips = 0
        self.support_ids, self.other_ids = [], []
        self.patch_stats = self.global_stats = None  # the support and the threshold clips get raw patch scores
        chosen = {c.clip_id for c in support}
        others = [c for c in normals if c.clip_id not in chosen]
        unseen = min(len(others), self.config.threshold_clips)
        training = self._add(support, progress, exact=unseen < MIN_UNSEEN)
        self.other_scores = torch.zeros(0)
        if unseen:
            step = max(1, len(others) // self.config.threshold_clips)
            scored = self._detect(others[::step][: self.config.threshold_clips], progress.child("threshold: "))
            self.other_scores = torch.tensor([d.score for d in scored], dtype=torch.float32)
            self.other_ids = [d.clip_id for d in scored]
            training.frame_scores = np.concatenate([training.frame_scores, *(d.frame_scores for d in scored)])
        training.clip_scores = np.concatenate([training.clip_scores, self.other_scores.numpy()])
        training.clip_ids = self.support_ids + self.other_ids
        training.clip_scores = self._learn_terms(training.clip_scores, normals, progress)
        return training

    def _choose_support(self, normals: list[Clip]) -> list[Clip]:
        config = self.config
        target = [c for c in normals if c.domain == "target"]
        source = [c for c in normals if c.domain != "target"]
        if config.support == "target+source":  # the domains take turns, so a full support holds both
            chosen = [c for pair in itertools.zip_longest(target, source) for c in pair if c is not None]
        else:
            chosen = target + source[: max(0, config.min_support - len(target))]
        chosen = chosen[: config.max_support]
        spare = len(normals) - len(chosen)
        if spare < MIN_UNSEEN and len(chosen) >= 3 * MIN_UNSEEN:
            # A support of every normal leaves none to be scored as an unseen clip is, and the frame threshold
            # then rests on strictly left-out maps, which are harsher: on the proposals test set (3 target and
            # 12 source clips) proposals' event F1 was 0.35 with all 15 in the support, 0.53 with 3 left out.
            chosen = chosen[: len(chosen) - (MIN_UNSEEN - spare)]
        if len(chosen) < 2:
            raise EarmarkError(
                "patch_memory needs at least 2 normal training clips (3 target clips or more is "
                "best); import more normal clips of this machine and section"
            )
        in_target = sum(c.domain == "target" for c in chosen)
        self.info.update(support_target=in_target, support_source=len(chosen) - in_target)
        return chosen

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips join the support; the clip threshold is learnt again from the support's new leave-one-out
        scores and the other normals' scores from fitting."""
        if self.support_ids is None:  # loaded: the held-out scores kept with the model say whose they were
            earlier = self.earlier_held_out_ids(self.clips + len(self.other_scores))
            self.support_ids, self.other_ids = (
                (None, None) if earlier is None else (earlier[: self.clips], earlier[self.clips :])
            )
        before = self.clips
        training = self._add(clips, progress, exact=len(self.other_scores) < MIN_UNSEEN)
        scores = self._enrol_terms(
            np.concatenate([training.clip_scores, self.other_scores.numpy()]), clips, before, progress
        )
        # The frame threshold stays as fitting learnt it
        return TrainingScores(
            scores, np.zeros(0), None if self.support_ids is None else self.support_ids + self.other_ids
        )

    def _add(self, clips: list[Clip], progress: Progress, exact: bool) -> TrainingScores:
        """Put the clips' patches into the memory, then learn the row statistics again."""
        embeddings = self.encoder.encode(clips, progress, patches=True)
        clips = [c for c in clips if c.clip_id in embeddings]
        if not clips:
            raise EarmarkError("patch_memory: none of the support clips could be read; check them with `earmark info`")
        parts = [self._patch_vectors(embeddings[c.clip_id]) for c in clips]
        owners, rows, columns = [], [], []
        for index, embedding in enumerate(embeddings[c.clip_id] for c in clips):
            _, f, t, _ = embedding.patches.shape
            owners.append(torch.full((f * t,), self.clips + index, dtype=torch.long))
            rows.append(torch.arange(f).repeat_interleave(t))
            columns.append(torch.arange(t).repeat(f))
        new = [torch.cat(parts, dim=1), torch.cat(owners), torch.cat(rows), torch.cat(columns)]
        new = [tensor.to(self.device) for tensor in new]
        if self.memory is None:
            self.memory, self.owner, self.row, self.column = new
        else:
            self.memory = torch.cat([self.memory, new[0]], dim=1)
            self.owner, self.row, self.column = (
                torch.cat([old, extra]) for old, extra in zip((self.owner, self.row, self.column), new[1:], strict=True)
            )
        self.clips += len(clips)
        if self.support_ids is not None:
            self.support_ids = self.support_ids + [c.clip_id for c in clips]
        self.info["support_clips"] = self.clips
        progress.update(1, 1, f"patch_memory: {self.memory.shape[1]} patches from {self.clips} clips in memory")
        return self._learn_rows(exact)

    def _learn_rows(self, exact: bool) -> TrainingScores:
        """The row statistics, from the support's leave-one-clip-out maps; and the support's training scores,
        each clip scored by the memory without its patches. `exact`: with row statistics learnt again
        without it too, as a test clip is scored. That is what a group with hardly any normals outside the
        support rests on; beside three or more of those (scored by the whole memory, which never held them)
        the support's scores keep the whole memory's row statistics, because statistics learnt from two
        clips' maps (a support of three, one left out) judge a clip far more harshly than the real memory
        judges an unseen one (on the synthetic set, thresholds 10 times too high)."""
        rows = int(self.row.max()) + 1
        best = self._best_per_clip()  # [L, N, C]; a patch's own clip's column is -1
        raw = 1.0 - best.amax(-1).mean(0)
        self.row_mean, self.row_scale = self._row_stats(raw, self.row, rows)
        clip_scores, frame_scores = [], []
        for clip in range(self.clips):
            mine = self.owner == clip
            if not mine.any():
                continue
            others = torch.arange(self.clips, device=self.device) != clip
            if exact and self.clips > 2:
                without = 1.0 - best[:, ~mine][..., others].amax(-1).mean(0)
                mean, scale = self._row_stats(without, self.row[~mine], rows)
            else:
                mean, scale = self.row_mean, self.row_scale
            values = (raw[mine] - mean[self.row[mine]]) / scale[self.row[mine]]
            grid = torch.full((rows, int(self.column[mine].max()) + 1), float("nan"), device=self.device)
            grid[self.row[mine], self.column[mine]] = values
            clip_scores.append(self._pool(grid))
            frame_scores.append(grid.nan_to_num(float("-inf")).amax(0).cpu().numpy())
        return TrainingScores(np.asarray(clip_scores), np.concatenate(frame_scores))

    def _best_per_clip(self) -> torch.Tensor:
        """[L, N, C] each support patch's highest cosine similarity to each support clip's patches (-1 to
        its own clip's), so any clip can be left out of the memory afterwards without measuring again."""
        best = torch.full((len(self.memory), len(self.owner), self.clips), -1.0, device=self.device)
        for clip in range(self.clips):
            theirs = self.owner == clip
            for layer in range(len(self.memory)):
                best[layer, :, clip] = max_cosine(
                    self.memory[layer],
                    self.memory[layer][theirs],
                    self.config.chunk_mb,
                    query_band=self.row,
                    memory_band=self.row[theirs],
                    band_window=self.config.band_window,
                )
            best[:, theirs, clip] = -1.0
        return best

    def _row_stats(self, raw: torch.Tensor, row: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each map row's mean and spread over the given patches (0 and 1 without row normalisation)."""
        if not self.config.row_norm:
            return torch.zeros(rows, device=self.device), torch.ones(rows, device=self.device)
        mean = torch.stack([raw[row == r].mean() if (row == r).any() else raw.mean() for r in range(rows)])
        scale = torch.stack(
            [raw[row == r].std(unbiased=False) if (row == r).any() else raw.std(unbiased=False) for r in range(rows)]
        )
        return mean, scale.clamp_min(1e-4)

    # -- the global term ------------------------------------------------------------------------------------
    def _learn_terms(self, patch: np.ndarray, normals: list[Clip], progress: Progress) -> np.ndarray:
        """The global term's bank (the support, the threshold clips, then other normal training clips up to
        `BANK_CLIPS`), both terms' held-out statistics, and the training clips' combined held-out scores from
        their held-out patch scores `patch` (the support's, then the threshold clips')."""
        by_id = {c.clip_id: c for c in normals}
        self.held_target = torch.tensor([by_id[i].domain == "target" for i in self.support_ids + self.other_ids])
        self.patch_stats = domain_z_stats(torch.as_tensor(patch, dtype=torch.float32), self.held_target)
        if not self.config.global_weight:
            return self._combine(patch, None, self.held_target)
        named = set(self.support_ids) | set(self.other_ids)
        rest = [c for c in normals if c.clip_id not in named]
        room = max(0, BANK_CLIPS - len(named))
        rest = rest[:: max(1, len(rest) // room)][:room] if room else []
        ordered = [by_id[i] for i in self.support_ids + self.other_ids] + rest
        statistics = band_statistics(self.cache, ordered, progress.child("band statistics: "))
        if any(i not in statistics for i in self.support_ids + self.other_ids):
            raise EarmarkError(
                "patch_memory: a support clip could be read for its patches but not for its band "
                "statistics; check the clips with `earmark info`"
            )
        self.global_term.learn(
            torch.as_tensor(np.stack([statistics[c.clip_id] for c in ordered if c.clip_id in statistics]))
        )
        held_out = self.global_term.held_out[: len(patch)].cpu()
        self.global_stats = domain_z_stats(held_out, self.held_target)
        return self._combine(patch, held_out.numpy(), self.held_target)

    def _enrol_terms(self, patch: np.ndarray, clips: list[Clip], before: int, progress: Progress) -> np.ndarray:
        """After an enrolment: the new support clips (the last `self.clips - before`) join the global bank
        after the earlier support (the bank's first rows are the support, then the threshold clips), and
        both terms' statistics and the combined held-out scores are learnt again."""
        if self.patch_stats is None:  # a model from before the global term: raw patch scores, as it was fitted
            return patch
        statistics = band_statistics(self.cache, clips, progress.child("band statistics: "))
        added = [c for c in clips if c.clip_id in statistics][: self.clips - before]  # those the memory took
        new_target = torch.tensor([c.domain == "target" for c in added], dtype=torch.bool)
        self.held_target = torch.cat([self.held_target[:before], new_target, self.held_target[before:]])
        self.patch_stats = domain_z_stats(torch.as_tensor(patch, dtype=torch.float32), self.held_target)
        if self.global_stats is None:
            return self._combine(patch, None, self.held_target)
        bank = self.global_term.bank
        rows = torch.as_tensor(np.stack([statistics[c.clip_id] for c in added])).to(bank)
        self.global_term.learn(torch.cat([bank[:before], rows, bank[before:]]))
        held_out = self.global_term.held_out[: len(patch)].cpu()
        self.global_stats = domain_z_stats(held_out, self.held_target)
        return self._combine(patch, held_out.numpy(), self.held_target)

    def _combine(self, patch: np.ndarray, distance: np.ndarray | None, target: torch.Tensor | None) -> np.ndarray:
        """Clip scores from raw patch scores and global distances: the sum of their z-scores against the
        held-out training scores, the global one weighed by `global_weight` (raw patch scores for a model
        from before the global term)."""
        patch = np.asarray(patch, dtype=np.float64)
        if self.patch_stats is None:
            return patch
        # each clip against its own domain's scores; a clip of no known domain against all of them
        row = np.zeros(len(patch), dtype=int) if target is None else 1 + torch.as_tensor(target).long().numpy()
        stats = self.patch_stats.detach().cpu().double().numpy()
        score = (patch - stats[row, 0]) / stats[row, 1]
        if distance is not None and self.global_stats is not None:
            stats = self.global_stats.detach().cpu().double().numpy()
            score = (
                score
                + self.config.global_weight * (np.asarray(distance, dtype=np.float64) - stats[row, 0]) / stats[row, 1]
            )
        return score

    # -- scoring -------------------------------------------------------------------------------------------
    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections = []
        for start in range(0, len(clips), BATCH):  # a few clips at a time: a long recording's grid may be large
            progress.update(start, len(clips), f"patch_memory: {len(detections)} clips scored")
            batch = clips[start : start + BATCH]
            embeddings = self.encoder.encode(batch, progress.child(""), patches=True)
            distances = self._global_distances(batch)
            for clip in (c for c in batch if c.clip_id in embeddings):
                embedding = embeddings[clip.clip_id]
                anomaly_map, score = self.map_of(embedding)
                domain = None if clip.domain is None else torch.tensor([clip.domain == "target"])
                score = float(self._combine(np.array([score]), distances.get(clip.clip_id), domain)[0])
                detections.append(
                    Detection(
                        clip.clip_id,
                        score,
                        False,
                        anomaly_map.max(axis=0),
                        embedding.time_spans_s.mean(axis=1),
                        anomaly_map=anomaly_map,
                        map_freq_spans_hz=embedding.freq_spans_hz,
                        map_time_spans_s=embedding.time_spans_s,
                    )
                )
        progress.update(len(clips), len(clips), f"patch_memory: {len(detections)} clips scored")
        return detections

    def _global_distances(self, clips: Sequence[Clip]) -> dict[str, np.ndarray]:
        """clip_id -> [1] the clip's global distance to the bank (nothing while fitting, or with the term off)."""
        if self.global_stats is None:
            return {}
        statistics = band_statistics(self.cache, clips)
        if not statistics:
            return {}
        ids = list(statistics)
        distances = self.global_term.distance(torch.as_tensor(np.stack([statistics[i] for i in ids])))
        return {clip_id: distances[index : index + 1].cpu().numpy() for index, clip_id in enumerate(ids)}

    def map_of(self, embedding: Embedding) -> tuple[np.ndarray, float]:
        """One clip's anomaly map [F, Tp] (rows normalised) and its raw patch score, from its patch embedding."""
        _, rows, columns, _ = embedding.patches.shape
        with torch.inference_mode():
            bands = torch.arange(rows, device=self.device).repeat_interleave(columns)
            grid = self._raw_map(self._patch_vectors(embedding).to(self.device), bands).reshape(rows, columns)
            grid = (grid - self.row_mean[:rows, None]) / self.row_scale[:rows, None]
            return grid.cpu().numpy().astype(np.float32), self._pool(grid)

    def _raw_map(self, queries: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """[N] 1 - highest cosine similarity of each query patch, averaged over layers ([L, N, D] queries
        in grid rows `bands` [N])."""
        maps = [
            1.0
            - max_cosine(
                queries[layer],
                self.memory[layer],
                self.config.chunk_mb,
                query_band=bands,
                memory_band=self.row,
                band_window=self.config.band_window,
            )
            for layer in range(len(self.memory))
        ]
        return torch.stack(maps).mean(0)

    def _pool(self, grid: torch.Tensor) -> float:
        values = grid[torch.isfinite(grid)]
        cut = torch.quantile(values, self.config.quantile)
        return float(values[values >= cut].mean())

    @staticmethod
    def _patch_vectors(embedding: Embedding) -> torch.Tensor:
        """[L, F * Tp, D] unit-length patch vectors (row-major over the grid)."""
        patches = torch.as_tensor(embedding.patches, dtype=torch.float32)
        return torch.nn.functional.normalize(patches.reshape(patches.shape[0], -1, patches.shape[-1]), dim=-1)

    # -- state ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {
            "memory": self.memory,
            "owner": self.owner,
            "row": self.row,
            "column": self.column,
            "row_mean": self.row_mean,
            "row_scale": self.row_scale,
            "clips": torch.tensor([self.clips]),
            "other_scores": self.other_scores,
            "patch_stats": self.patch_stats,
            "held_target": self.held_target,
        }
        if self.global_stats is not None:
            state.update(self.global_term.state(), global_stats=self.global_stats)
        return {name: tensor for name, tensor in state.items() if tensor is not None}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = {name: tensor.to(self.device) for name, tensor in state.items()}
        self.memory, self.owner, self.row, self.column = state["memory"], state["owner"], state["row"], state["column"]
        self.row_mean, self.row_scale = state["row_mean"], state["row_scale"]
        self.clips = int(state["clips"][0])
        self.other_scores = state["other_scores"].cpu()
        self.patch_stats, self.global_stats = (
            None if state.get(name) is None else state[name].cpu() for name in ("patch_stats", "global_stats")
        )
        self.held_target = state.get("held_target", torch.zeros(0, dtype=torch.bool)).cpu().bool()
        if self.global_stats is not None:
            self.global_term.load(state)
        if self.patch_stats is None:  # saved before band windows and the global term: score as it was fitted
            self.config.band_window, self.config.global_weight = -1, 0.0
        self.support_ids = self.other_ids = None  # known again from the held-out scores saved with the model
