"""`knn`: a memory bank of normal embeddings per domain, with MemMixup and domain normalisation (GenRep).
See README.md in this folder for the method and its figures."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.audio.augment import mix_at_snr, pitch_shift
from engine.audio.feature_cache import load_clips
from engine.data.clip import Clip
from engine.detectors.band_maps import map_fields
from engine.detectors.base import Detection, Detector, DetectorConfig, TrainingScores
from engine.detectors.held_out import held_out_folds
from engine.detectors.knn.bank import (
    METRICS,
    knn_distance,
    leave_one_out_stats,
    mem_mixup,
)
from engine.detectors.knn.maps import lane_maps
from engine.encoders import Embedding, make_encoder
from engine.encoders.logmel import LogMelEncoder
from engine.errors import EarmarkError
from engine.jobs import Progress

DOMAINS = ("source", "target")
#: Training frames sampled to learn the frame threshold (a quantile needs no more).
_THRESHOLD_FRAMES = 20000
#: Groups up to this size learn thresholds leaving one clip out at a time; larger ones, one fold of many.
LEAVE_ONE_OUT_UP_TO = 50
HELD_OUT_FOLDS = 10
#: Clips embedded and scored at a time.
_SCORE_BATCH = 32


@dataclass
class KnnConfig(DetectorConfig):
    encoder: str = "logmel"
    k: int = 3
    distance: str = "l2"
    #: z-score every embedding dimension with the source bank's mean and spread before measuring distances.
    standardise: bool = True
    memmixup: bool = False
    mixup_neighbours: int = 5
    mixup_lambda: float = 0.9
    domain_norm: bool = False
    #: Add copies of the training clips mixed with supplemental noise-only clips, and pitch-shifted copies.
    augment: bool = False
    augment_snrs: tuple[float, ...] = (0.0, 10.0, 20.0)
    augment_semitones: tuple[float, ...] = (-1.0, 1.0)
    augment_noises_per_clip: int = 2
    frame_bank_size: int = 1024
    frame_k: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.distance not in METRICS:
            raise EarmarkError(f"knn: distance must be one of {', '.join(METRICS)}, not {self.distance!r}")
        if self.k < 1 or self.frame_k < 1 or self.frame_bank_size < 1:
            raise EarmarkError("knn: k, frame_k and frame_bank_size must be at least 1")
        if not 0.0 <= self.mixup_lambda <= 1.0:
            raise EarmarkError("knn: mixup_lambda must lie between 0 and 1")


@dataclass
class _Clips:
    """Training clips as the bank is built from them: raw clip embeddings, domains, parent indices and the
    full embeddings (for their frames)."""

    vectors: torch.Tensor
    domains: list[str]
    parents: torch.Tensor
    embeddings: list[Embedding]

    def subset(self, which: np.ndarray) -> _Clips:
        index = torch.as_tensor(which, dtype=torch.long, device=self.vectors.device)
        return _Clips(
            self.vectors[index],
            [self.domains[i] for i in which],
            self.parents[index],
            [self.embeddings[i] for i in which],
        )


class _Bank:
    """Rows of one domain's bank, the training clip each row came from, and which rows are the clips
    themselves (not MemMixup or augmented copies)."""

    def __init__(self, dim: int, device: torch.device) -> None:
        self.rows = torch.zeros((0, dim), device=device)
        self.parent = torch.zeros(0, dtype=torch.long, device=device)
        self.original = torch.zeros(0, dtype=torch.bool, device=device)

    def add(self, rows: torch.Tensor, parent: torch.Tensor, original: bool) -> None:
        self.rows = torch.cat([self.rows, rows.to(self.rows)])
        self.parent = torch.cat([self.parent, parent.to(self.parent)])
        self.original = torch.cat([self.original, torch.full((len(rows),), original, device=self.original.device)])


class KnnDetector(Detector):
    key = "knn"
    title = "Memory-bank k-NN"
    fit_cost = 0.0015  # measured: engine.fit_estimate
    Config = KnnConfig
    config: KnnConfig

    def __init__(self, config: KnnConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.encoder = make_encoder(self.config.encoder, self.cache)
        self.mean = self.scale = None
        self.banks: dict[str, _Bank] = {}
        self.stats: dict[str, tuple[float, float] | None] = {}
        self.frames = self.frame_parent = self.frame_mean = self.frame_scale = None
        self.parents = 0
        self.held_out = np.zeros(0)  # training clips' scores from banks without them: what thresholds rest on

    # -- fitting ---------------------------------------------------------------------------------------------
    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        embeddings = self.encoder.encode(normals, progress)
        normals = [c for c in normals if c.clip_id in embeddings]
        if not normals:
            raise EarmarkError("knn: none of the training clips could be read; check them with `earmark info`")
        clips = _Clips(
            self._tensor([embeddings[c.clip_id].clip for c in normals]),
            [_domain(c) for c in normals],
            torch.arange(len(normals), device=self.device),
            [embeddings[c.clip_id] for c in normals],
        )
        self.parents = len(normals)
        augmented = self._augment(normals, supplemental, progress) if self.config.augment else []
        self._build(clips, augmented)
        training = self._held_out_scores(clips, augmented, progress)
        training.clip_ids = [c.clip_id for c in normals]
        self.held_out = training.clip_scores
        return training

    def _build(self, clips: _Clips, augmented: list[tuple[torch.Tensor, str, int]]) -> None:
        """The banks, their statistics and the frame bank, from the clips (raw embeddings) and the augmented
        copies of those clips whose parent is among them."""
        vectors, domains = clips.vectors, clips.domains
        # The source clips set the scale; with fewer than two of them (a clip left out of a tiny group) every
        # clip does, and a single clip has no spread to divide by.
        reference = vectors[[d == "source" for d in domains]] if domains.count("source") >= 2 else vectors
        if self.config.standardise and len(reference) >= 2:
            self.mean, self.scale = reference.mean(0), reference.std(0, unbiased=False).clamp_min(1e-3)
        else:
            self.mean, self.scale = torch.zeros_like(vectors[0]), torch.ones_like(vectors[0])
        self.banks = {d: _Bank(vectors.shape[1], self.device) for d in DOMAINS}
        for domain in DOMAINS:
            chosen = torch.tensor([d == domain for d in domains], device=self.device)
            self.banks[domain].add(self._standardised(vectors[chosen]), clips.parents[chosen], original=True)
        present = set(clips.parents.tolist())
        for row, domain, parent in augmented:
            if parent in present:
                self.banks[domain].add(self._standardised(row[None]), torch.tensor([parent]), original=False)
        self._mixup(self.banks["target"].original)
        self._update_stats()
        self._fit_frames(clips.embeddings, clips.parents)

    def _held_out_scores(
        self, clips: _Clips, augmented: list[tuple[torch.Tensor, str, int]], progress: Progress
    ) -> TrainingScores:
        """Each training clip scored, clip and frames, exactly as a test clip is, by banks built without it
        (its MemMixup and augmented copies left out too, the standardisation and domain statistics learnt
        again): one clip at a time, or one fold at a time in a large group."""
        folds = held_out_folds(
            len(clips.domains),
            len(clips.domains) if len(clips.domains) <= LEAVE_ONE_OUT_UP_TO else HELD_OUT_FOLDS,
            self.config.seed,
            clips.domains,
        )
        clip_scores = torch.full((len(clips.domains),), float("nan"), device=self.device)
        frame_scores = []
        for index, fold in enumerate(folds):
            progress.update(index, len(folds), f"knn: threshold from held-out clips, fold {index + 1}/{len(folds)}")
            keep = np.setdiff1d(np.arange(len(clips.domains)), fold)
            if not len(keep):
                continue
            without = copy.copy(self)
            without._build(clips.subset(keep), augmented)
            without._borrow_stats(self.stats)
            held = clips.subset(fold)
            with torch.inference_mode():
                clip_scores[torch.as_tensor(fold, device=self.device)] = without._clip_scores(
                    without._standardised(held.vectors)
                )
                frames = self._tensor(np.concatenate([e.frames for e in held.embeddings]))
                keep_frames = self._sample(len(frames), max(1, _THRESHOLD_FRAMES // len(folds)))
                frame_scores.append(without._frame_scores(frames[keep_frames]).cpu().numpy())
        scores = clip_scores.cpu().numpy()
        if not np.isfinite(scores).any():  # one clip: nothing to leave it out of; its own scores must do
            with torch.inference_mode():
                frames = self._tensor(np.concatenate([e.frames for e in clips.embeddings]))
                return TrainingScores(
                    self._clip_scores(self._standardised(clips.vectors)).cpu().numpy(),
                    self._frame_scores(frames).cpu().numpy(),
                )
        return TrainingScores(scores, np.concatenate(frame_scores) if frame_scores else np.zeros(0))

    def _augment(
        self,
        normals: list[Clip],
        supplemental: list[Clip],
        progress: Progress,
    ) -> list[tuple[torch.Tensor, str, int]]:
        """Raw embeddings of copies of the training clips mixed with supplemental noise and pitch-shifted,
        each with its domain and the index of the clip it came from."""
        rate = self.encoder.sample_rate
        noises = [c for c in supplemental if c.attributes.get("supp_type", "noise") == "noise"]
        noise_audio = [
            (clip, audio)
            for clip, audio in zip(noises, load_clips(noises, rate, progress), strict=True)
            if audio is not None
        ]
        augmented = []
        for index, clip in enumerate(normals):
            progress.update(index, len(normals), f"knn: augmenting {clip.clip_id}")
            [audio] = load_clips([clip], rate, progress)
            if audio is None:
                continue
            copies: list[tuple[np.ndarray, str]] = []
            for turn in range(min(self.config.augment_noises_per_clip, len(noise_audio))):
                noise_clip, noise = noise_audio[(index + turn) % len(noise_audio)]
                copies += [(mix_at_snr(audio, noise, snr), _domain(noise_clip)) for snr in self.config.augment_snrs]
            copies += [(pitch_shift(audio, rate, step), _domain(clip)) for step in self.config.augment_semitones]
            if not copies:
                continue
            vectors = self._tensor([e.clip for e in self.encoder.embed_waveforms([audio for audio, _ in copies])])
            augmented += [(row, domain, index) for row, (_, domain) in zip(vectors, copies, strict=True)]
        return augmented

    def _mixup(self, which: torch.Tensor) -> None:
        """MemMixup for the chosen target rows: add their mixes with the nearest source clips."""
        if not self.config.memmixup:
            return
        target, source = self.banks["target"], self.banks["source"]
        rows = target.rows[which]
        mixed, origin = mem_mixup(
            rows, source.rows[source.original], self.config.mixup_neighbours, self.config.mixup_lambda
        )
        target.add(mixed, target.parent[which][origin], original=False)

    def _update_stats(self) -> None:
        self.stats = {}
        for domain, bank in self.banks.items():
            self.stats[domain] = leave_one_out_stats(
                bank.rows[bank.original],
                bank.parent[bank.original],
                bank.rows,
                bank.parent,
                self.config.k,
                self.config.distance,
            )

    def _borrow_stats(self, full: dict[str, tuple[float, float] | None]) -> None:
        """A domain with a clip left out may have too few clips left to learn its statistics (3 target
        clips leave 2): it keeps the full bank's, rather than being measured on the other domain's scale."""
        self.stats = {domain: stats or full.get(domain) for domain, stats in self.stats.items()}

    def _fit_frames(self, embeddings: list[Embedding], parents: torch.Tensor) -> None:
        frames = self._tensor(np.concatenate([e.frames for e in embeddings]))
        owner = torch.repeat_interleave(parents, torch.tensor([len(e.frames) for e in embeddings], device=self.device))
        self.frame_mean = frames.mean(0)
        self.frame_scale = frames.std(0, unbiased=False).clamp_min(1e-3)
        keep = self._sample(len(frames), self.config.frame_bank_size)
        self.frames = (frames[keep] - self.frame_mean) / self.frame_scale
        self.frame_parent = owner[keep]

    def _sample(self, count: int, size: int) -> torch.Tensor:
        if count <= size:
            return torch.arange(count, device=self.device)
        generator = torch.Generator().manual_seed(self.config.seed + self.parents)
        return torch.randperm(count, generator=generator)[:size].sort().values.to(self.device)

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        embeddings = self.encoder.encode(clips, progress)
        clips = [c for c in clips if c.clip_id in embeddings]
        if not clips:
            raise EarmarkError("knn: none of the clips to enrol could be read")
        parents = torch.arange(self.parents, self.parents + len(clips), device=self.device)
        self.parents += len(clips)
        target = self.banks["target"]
        before = len(target.rows)
        target.add(
            self._standardised(self._tensor([embeddings[c.clip_id].clip for c in clips])), parents, original=True
        )
        self._mixup(torch.arange(len(target.rows), device=self.device) >= before)
        self._update_stats()
        for clip, parent in zip(clips, parents, strict=True):  # a share of each new clip's frames joins the bank
            frames = (self._tensor(embeddings[clip.clip_id].frames) - self.frame_mean) / self.frame_scale
            keep = self._sample(len(frames), max(1, self.config.frame_bank_size // 16))
            self.frames = torch.cat([self.frames, frames[keep]])
            self.frame_parent = torch.cat([self.frame_parent, parent.repeat(len(keep))])
        new = torch.cat([self._left_out_score(int(parent)) for parent in parents]).cpu().numpy()
        # Held-out scores from fitting stay (a bank that has grown only scores them lower); a model saved
        # before they were kept has only its training clips' scores against the rest of the bank.
        earlier = self.held_out if len(self.held_out) else self._training_clip_scores()
        earlier_ids = self.earlier_held_out_ids(len(earlier))
        self.held_out = np.concatenate([earlier, new])
        return TrainingScores(
            self.held_out, np.zeros(0), None if earlier_ids is None else earlier_ids + [c.clip_id for c in clips]
        )

    def _left_out_score(self, parent: int) -> torch.Tensor:
        """An enrolled clip's score against the banks without it (its MemMixup copies and its share of the
        domain statistics left out too; the standardisation comes from the source clips, not from it)."""
        without = copy.copy(self)
        without.banks = {}
        for domain, bank in self.banks.items():
            keep = bank.parent != parent
            without.banks[domain] = _Bank(bank.rows.shape[1], self.device)
            without.banks[domain].add(bank.rows[keep & bank.original], bank.parent[keep & bank.original], True)
            without.banks[domain].add(bank.rows[keep & ~bank.original], bank.parent[keep & ~bank.original], False)
        without._update_stats()
        without._borrow_stats(self.stats)
        target = self.banks["target"]
        row = target.rows[(target.parent == parent) & target.original]
        with torch.inference_mode():
            return without._clip_scores(row)

    # -- scoring ---------------------------------------------------------------------------------------------
    def _combine(self, distances: dict[str, torch.Tensor]) -> torch.Tensor:
        """The clip score: each bank's distance, z-scored with that bank's leave-one-out statistics when
        domain normalisation is on, and the smaller of the two (the domain the clip sounds closest to)."""
        scores = []
        for domain, distance in distances.items():
            if not len(self.banks[domain].rows):
                continue
            if self.config.domain_norm:
                stats = self.stats.get(domain) or next((s for s in self.stats.values() if s), None) or (0.0, 1.0)
                distance = (distance - stats[0]) / stats[1]
            scores.append(torch.where(torch.isnan(distance), torch.full_like(distance, float("inf")), distance))
        best = torch.stack(scores).min(0).values
        return torch.where(torch.isinf(best), torch.full_like(best, float("nan")), best)

    def _clip_scores(self, queries: torch.Tensor, parents: torch.Tensor | None = None) -> torch.Tensor:
        config = self.config
        return self._combine(
            {
                domain: knn_distance(
                    queries, bank.rows, config.k, config.distance, parents, bank.parent if parents is not None else None
                )
                for domain, bank in self.banks.items()
            }
        )

    def _training_clip_scores(self) -> np.ndarray:
        rows = torch.cat([b.rows[b.original] for b in self.banks.values()])
        parents = torch.cat([b.parent[b.original] for b in self.banks.values()])
        return self._clip_scores(rows, parents).cpu().numpy()

    def _frame_scores(self, frames: torch.Tensor, parents: torch.Tensor | None = None) -> torch.Tensor:
        frames = (frames - self.frame_mean) / self.frame_scale
        return knn_distance(
            frames, self.frames, self.config.frame_k, "l2", parents, self.frame_parent if parents is not None else None
        )

    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections: list[Detection] = []
        # a few clips at a time: the patch grids other encoders' maps are made of are large (11 MB for 10 s
        # of AST's three layers); logmel's frames are mel bands themselves and need none
        patches = not isinstance(self.encoder, LogMelEncoder)
        for start in range(0, len(clips), _SCORE_BATCH):
            progress.update(start, len(clips), f"knn: {len(detections)} clips scored")
            batch = clips[start : start + _SCORE_BATCH]
            detections += self._detect_batch(batch, self.encoder.encode(batch, progress.child(""), patches=patches))
        progress.update(len(clips), len(clips), f"knn: {len(detections)} clips scored")
        return detections

    def _detect_batch(self, clips: Sequence[Clip], embeddings: dict[str, Embedding]) -> list[Detection]:
        clips = [c for c in clips if c.clip_id in embeddings]
        if not clips:
            return []
        with torch.inference_mode():
            queries = self._standardised(self._tensor([embeddings[c.clip_id].clip for c in clips]))
            scores = self._clip_scores(queries).cpu().numpy()
            frames = self._tensor(np.concatenate([embeddings[c.clip_id].frames for c in clips]))
            # the lane as `_frame_scores` gives it, and its map, from one search of the frame bank
            frame_scores, maps = lane_maps(
                self.encoder,
                [embeddings[c.clip_id] for c in clips],
                [c.duration_s for c in clips],
                (frames - self.frame_mean) / self.frame_scale,
                self.frames,
                self.config.frame_k,
                self.frame_mean,
                self.frame_scale,
            )
        return [
            Detection(
                clip.clip_id,
                float(score),
                False,
                lane.astype(np.float32),
                embeddings[clip.clip_id].frame_times,
                **map_fields(found),
            )
            for clip, score, lane, found in zip(clips, scores, frame_scores, maps, strict=True)
        ]

    # -- helpers and state ----------------------------------------------------------------------------------
    def _tensor(self, arrays) -> torch.Tensor:
        return torch.as_tensor(
            np.asarray(arrays if not isinstance(arrays, list) else np.stack(arrays)),
            dtype=torch.float32,
            device=self.device,
        )

    def _standardised(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors - self.mean) / self.scale

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {
            "mean": self.mean,
            "scale": self.scale,
            "frames": self.frames,
            "frame_parent": self.frame_parent,
            "frame_mean": self.frame_mean,
            "frame_scale": self.frame_scale,
            "parents": torch.tensor([self.parents]),
            "held_out": torch.as_tensor(np.asarray(self.held_out, dtype=np.float32)),
        }
        for domain, bank in self.banks.items():
            state.update(
                {f"{domain}.rows": bank.rows, f"{domain}.parent": bank.parent, f"{domain}.original": bank.original}
            )
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = {name: tensor.to(self.device) for name, tensor in state.items()}
        self.mean, self.scale = state["mean"], state["scale"]
        self.frames, self.frame_parent = state["frames"], state["frame_parent"]
        self.frame_mean, self.frame_scale = state["frame_mean"], state["frame_scale"]
        self.parents = int(state["parents"][0])
        self.held_out = state["held_out"].cpu().numpy() if "held_out" in state else np.zeros(0)
        self.banks = {}
        for domain in DOMAINS:
            bank = _Bank(self.mean.shape[0], self.device)
            bank.rows, bank.parent, bank.original = (
                state[f"{domain}.rows"],
                state[f"{domain}.parent"],
                state[f"{domain}.original"],
            )
            self.banks[domain] = bank
        self._update_stats()


def _domain(clip: Clip) -> str:
    return clip.domain or "source"
