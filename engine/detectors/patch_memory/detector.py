"""`patch_memory`: training-free few-shot detection with an anomaly map over time and frequency.
See README.md in this folder for the method, its settings and its figures."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.base import Detection, Detector, DetectorConfig, TrainingScores
from engine.detectors.patch_memory.memory import max_cosine
from engine.detectors.registry import register_detector
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
    #: Whose patches make the memory: the target-domain normal training clips, or those and the source ones.
    support: str = "target"
    #: With fewer target clips than this, source clips fill the support up to it.
    min_support: int = 3
    #: At most this many support clips (target clips first).
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

    def __post_init__(self) -> None:
        try:  # `--set layers=4,8,12` arrives as text
            self.layers = tuple(int(layer) for layer in self.layers)
        except ValueError:
            raise EarmarkError(f"patch_memory: layers must be whole numbers such as 4,8,12 (or -1 for the last), "
                               f"not {','.join(map(str, self.layers))}") from None
        if self.support not in SUPPORTS:
            raise EarmarkError(f"patch_memory: support must be one of {', '.join(SUPPORTS)}, not {self.support!r}")
        if not 0.0 <= self.quantile <= 1.0:
            raise EarmarkError("patch_memory: quantile must lie between 0 and 1")
        if self.chunk_mb <= 0 or self.min_support < 2 or self.max_support < self.min_support:
            raise EarmarkError("patch_memory: chunk_mb must be above 0, and 2 <= min_support <= max_support")


@register_detector
class PatchMemoryDetector(Detector):
    key = "patch_memory"
    title = "Patch memory (training-free)"
    Config = PatchMemoryConfig
    config: PatchMemoryConfig

    def __init__(self, config: PatchMemoryConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.encoder = make_encoder(self.config.encoder, self.cache, layers=self.config.layers)
        self.memory: torch.Tensor | None = None  # [L, N, D] unit vectors: every support patch of every layer
        self.owner = self.row = self.column = None  # [N] support clip, grid row and column of each patch
        self.row_mean = self.row_scale = None  # [F] the support's leave-one-out map statistics per row
        self.clips = 0
        self.other_scores = torch.zeros(0)  # scores of the other training normals, from fitting
        self.support_ids: list[str] | None = []  # whose the support's and the other scores are (None: unknown)
        self.other_ids: list[str] | None = []

    # -- fitting ------------------------------------------------------------------------------------------
    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        support = self._choose_support(normals)
        self.memory = None
        self.clips = 0
        self.support_ids, self.other_ids = [], []
        chosen = {c.clip_id for c in support}
        others = [c for c in normals if c.clip_id not in chosen]
        unseen = min(len(others), self.config.threshold_clips)
        training = self._add(support, progress, exact=unseen < MIN_UNSEEN)
        self.other_scores = torch.zeros(0)
        if unseen:
            step = max(1, len(others) // self.config.threshold_clips)
            scored = self._detect(others[::step][:self.config.threshold_clips], progress.child("threshold: "))
            self.other_scores = torch.tensor([d.score for d in scored], dtype=torch.float32)
            self.other_ids = [d.clip_id for d in scored]
            training.frame_scores = np.concatenate([training.frame_scores, *(d.frame_scores for d in scored)])
        training.clip_scores = np.concatenate([training.clip_scores, self.other_scores.numpy()])
        training.clip_ids = self.support_ids + self.other_ids
        return training

    def _choose_support(self, normals: list[Clip]) -> list[Clip]:
        config = self.config
        target = [c for c in normals if c.domain == "target"]
        source = [c for c in normals if c.domain != "target"]
        chosen = target + (source if config.support == "target+source" else
                           source[:max(0, config.min_support - len(target))])
        chosen = chosen[:config.max_support]
        if len(chosen) < 2:
            raise EarmarkError("patch_memory needs at least 2 normal training clips (3 target clips or more is "
                               "best); import more normal clips of this machine and section")
        self.info.update(support_target=min(len(target), len(chosen)),
                         support_source=len(chosen) - min(len(target), len(chosen)))
        return chosen

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips join the support; the clip threshold is learnt again from the support's new leave-one-out
        scores and the other normals' scores from fitting."""
        if self.support_ids is None:  # loaded: the held-out scores kept with the model say whose they were
            earlier = self.earlier_held_out_ids(self.clips + len(self.other_scores))
            self.support_ids, self.other_ids = (None, None) if earlier is None else (earlier[:self.clips],
                                                                                     earlier[self.clips:])
        training = self._add(clips, progress, exact=len(self.other_scores) < MIN_UNSEEN)
        # The frame threshold stays as fitting learnt it
        return TrainingScores(np.concatenate([training.clip_scores, self.other_scores.numpy()]), np.zeros(0),
                              None if self.support_ids is None else self.support_ids + self.other_ids)

    def _add(self, clips: list[Clip], progress: Progress, exact: bool) -> TrainingScores:
        """Put the clips' patches into the memory, then learn the row statistics again."""
        embeddings = self.encoder.encode(clips, progress, patches=True)
        clips = [c for c in clips if c.clip_id in embeddings]
        if not clips:
            raise EarmarkError("patch_memory: none of the support clips could be read; check them with "
                               "`earmark info`")
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
            self.owner, self.row, self.column = (torch.cat([old, extra]) for old, extra in
                                                 zip((self.owner, self.row, self.column), new[1:], strict=True))
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
                best[layer, :, clip] = max_cosine(self.memory[layer], self.memory[layer][theirs],
                                                  self.config.chunk_mb)
            best[:, theirs, clip] = -1.0
        return best

    def _row_stats(self, raw: torch.Tensor, row: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each map row's mean and spread over the given patches (0 and 1 without row normalisation)."""
        if not self.config.row_norm:
            return torch.zeros(rows, device=self.device), torch.ones(rows, device=self.device)
        mean = torch.stack([raw[row == r].mean() if (row == r).any() else raw.mean() for r in range(rows)])
        scale = torch.stack([raw[row == r].std(unbiased=False) if (row == r).any() else raw.std(unbiased=False)
                             for r in range(rows)])
        return mean, scale.clamp_min(1e-4)

    # -- scoring -------------------------------------------------------------------------------------------
    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections = []
        for start in range(0, len(clips), BATCH):  # a few clips at a time: a long recording's grid may be large
            progress.update(start, len(clips), f"patch_memory: {len(detections)} clips scored")
            batch = clips[start:start + BATCH]
            embeddings = self.encoder.encode(batch, progress.child(""), patches=True)
            for clip in (c for c in batch if c.clip_id in embeddings):
                embedding = embeddings[clip.clip_id]
                anomaly_map, score = self.map_of(embedding)
                detections.append(Detection(
                    clip.clip_id, score, False, anomaly_map.max(axis=0), embedding.time_spans_s.mean(axis=1),
                    anomaly_map=anomaly_map, map_freq_spans_hz=embedding.freq_spans_hz,
                    map_time_spans_s=embedding.time_spans_s))
        progress.update(len(clips), len(clips), f"patch_memory: {len(detections)} clips scored")
        return detections

    def map_of(self, embedding: Embedding) -> tuple[np.ndarray, float]:
        """One clip's anomaly map [F, Tp] (rows normalised) and its clip score, from its patch embedding."""
        _, rows, columns, _ = embedding.patches.shape
        with torch.inference_mode():
            grid = self._raw_map(self._patch_vectors(embedding).to(self.device)).reshape(rows, columns)
            grid = (grid - self.row_mean[:rows, None]) / self.row_scale[:rows, None]
            return grid.cpu().numpy().astype(np.float32), self._pool(grid)

    def _raw_map(self, queries: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """[N] 1 - highest cosine similarity of each query patch, averaged over layers ([L, N, D] queries)."""
        maps = [1.0 - max_cosine(queries[layer], self.memory[layer], self.config.chunk_mb, owner,
                                 self.owner if owner is not None else None)
                for layer in range(len(self.memory))]
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
        return {"memory": self.memory, "owner": self.owner, "row": self.row, "column": self.column,
                "row_mean": self.row_mean, "row_scale": self.row_scale, "clips": torch.tensor([self.clips]),
                "other_scores": self.other_scores}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = {name: tensor.to(self.device) for name, tensor in state.items()}
        self.memory, self.owner, self.row, self.column = state["memory"], state["owner"], state["row"], state["column"]
        self.row_mean, self.row_scale = state["row_mean"], state["row_scale"]
        self.clips = int(state["clips"][0])
        self.other_scores = state["other_scores"].cpu()
        self.support_ids = self.other_ids = None  # known again from the held-out scores saved with the model
