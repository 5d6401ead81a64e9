"""`meta_proto`: a small conv encoder on log-mel segments, trained episodically (ProtoNet, optionally with a
Reptile outer loop) on the clips' metadata as classification tasks (section, speed, load, microphone, noise,
domain; self-supervised pseudo-classes where there are none); a clip scores by its distance to the nearest
normal prototype of its domain. See README.md in this folder for the method, its settings and its figures.

The network trains through `engine.training.Trainer` (branches "encoder" and "head"), in `training_folder`
when `runs.fit` gives one (so a cancelled fit resumes there), else in a temporary folder removed afterwards."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from engine.data.clip import Clip
from engine.detectors.base import Detection, Detector, TrainingScores
from engine.detectors.held_out import held_out_folds
from engine.detectors.meta_proto.alone import SINGLE_SEGMENT, alone_score
from engine.detectors.meta_proto.config import MetaProtoConfig
from engine.detectors.meta_proto.episodes import (
    EpisodeModel,
    EpisodePool,
    ReptileModel,
    adapt,
    episode_pool,
    protonet_loss,
    reptile_loss,
)
from engine.detectors.meta_proto.maps import clip_map
from engine.detectors.meta_proto.memory import Memory, patch_term
from engine.detectors.metadata import ClipSegments, ConvEmbedding, clip_segments
from engine.detectors.metadata.segments import band_spans_hz
from engine.detectors.metadata.tasks import (
    VIEWS,
    fallback_report,
    metadata_tasks,
    task_summary,
)
from engine.errors import EarmarkError
from engine.jobs import Progress

#: Clips read and scored at once.
SCORED_AT_ONCE = 16
#: Segments through the network at once when embedding.
_BATCH = 64
#: Settings that change only how a trained network scores: a resumed training may differ in them.
_SCORING_ONLY = {
    "threshold_quantile",
    "frame_quantile",
    "merge_gap_s",
    "min_region_s",
    "prototypes",
    "score",
    "support",
    "domain_norm",
    "patch_bank",
    "patch_weight",
    "standardise",
    "adapt_steps",
}


class MetaProtoDetector(Detector):
    key = "meta_proto"
    title = "Metadata ProtoNet"
    Config = MetaProtoConfig
    config: MetaProtoConfig
    by_default = False  # loses to patch_memory on the condition matrix (README): fitted by name only
    #: The fit estimate: seconds per ProtoNet step (an episode of 5 x 6 segments through the encoder and
    #: back) and per second of training audio (embedding the clips, the memory, the held-out maps), measured
    #: on the quick condition matrix (2 shared cores: 8.5 s for 6 clips of 4 s, 13.1 s for 60; README.md).
    step_cost: ClassVar[float] = 0.04
    fit_cost = 0.02

    @classmethod
    def fit_seconds(cls, config: MetaProtoConfig, train_s: float) -> float:
        """An epoch is `episodes` episodes whatever the audio; the embedding and maps grow with it."""
        steps = config.epochs * config.episodes * (config.inner_steps if config.reptile else 1)
        return cls.step_cost * steps + cls.fit_cost * train_s

    def __init__(self, config: MetaProtoConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.net = self._network()
        self.memory = Memory(self.config.prototypes, self.config.score, self.config.support)
        self.task_names: list[str] = []  # the metadata tasks whose values make a clip's class

    def _network(self) -> ConvEmbedding:
        with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights, not the global state
            torch.manual_seed(self.config.seed)
            return ConvEmbedding(self.config.dim, frequency_rows=self.config.frequency_rows).to(self.device)

    def branches(self) -> dict[str, nn.Module]:
        return {"encoder": nn.ModuleList([self.net.input_norm, self.net.blocks]), "head": self.net.project}

    # -- fitting --------------------------------------------------------------------------------------------
    def _segments(self, clips: Sequence[Clip], progress: Progress) -> dict[str, ClipSegments]:
        return clip_segments(self.cache, clips, self.config.segments, progress)

    def fit(self, clips: Sequence[Clip], progress: Progress | None = None) -> None:
        super().fit(clips, progress)
        # the report counts the clips fitted on, not those skipped as unreadable or too short
        skipped = self.info["trained_on"] - self.info["clips_read"]
        self.info.update(trained_on=self.info.pop("clips_read"), skipped=skipped)

    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        config = self.config
        self.net = self._network()  # a fresh network for every fit
        segments = self._segments(normals, progress.child("", span=(0.0, 0.05)))
        normals = [c for c in normals if c.clip_id in segments]
        if not normals:
            raise EarmarkError(
                "meta_proto: none of the training clips could be read or is long enough; check them with `earmark info`"
            )
        held: list[Clip] = []
        if len(normals) >= 2:
            domains = [c.domain or "source" for c in normals]
            folds = held_out_folds(len(normals), max(2, round(1 / config.held_out_fraction)), config.seed, domains)
            held = [normals[i] for i in folds[0]]
        trained = [c for c in normals if c not in held]
        pool = self._pool(trained, segments, progress)
        if pool.tasks:
            self._train(pool, trained, progress.child("", span=(0.05, 0.85)))
        else:
            self.info["epochs_trained"] = 0
        if config.adapt_steps:
            self._adapt([c for c in trained if c.domain == "target"], segments)
        tasks, _ = metadata_tasks(normals, config.min_class_clips, use_domain=False)
        self.task_names = [t.name for t in tasks]
        self.memory = Memory(config.prototypes, config.score, config.support)
        embedded = self._embed(normals, segments, progress.child("", span=(0.85, 0.95)))
        held_ids = {c.clip_id for c in held}
        for clip in normals:
            self._remember(clip, embedded[clip.clip_id], clip.clip_id in held_ids or not held)
        self.memory.limit_columns(config.patch_bank, config.seed)
        self.memory.learn_standardisation(config.standardise)
        self.memory.learn_scales(config.domain_norm, progress)
        self.memory.learn_row_scales(seed=config.seed)
        lanes = {}
        if len(normals) == 1:  # nothing to leave the clip out of: never its own match (alone.py)
            clip = normals[0]
            raw, maps, viewed = alone_score(
                self.memory,
                clip.domain,
                segments[clip.clip_id].segments,
                embedded[clip.clip_id],
                self._forward,
                config.seed,
            )
            if viewed:
                progress.problem(SINGLE_SEGMENT.format(count=len(segments[clip.clip_id].segments)))
            lanes[clip.clip_id] = self._lane_of(maps, clip, segments[clip.clip_id])
            self.memory.patch_terms[0] = patch_term(lanes[clip.clip_id])
            self.memory.alone_raw = raw
        for index, clip in enumerate(normals if len(normals) > 1 else ()):
            if self.memory.held[index]:  # measured left out of the memory, as an unseen clip is
                lanes[clip.clip_id] = self._lane(clip, segments[clip.clip_id], embedded[clip.clip_id], left_out=True)
                self.memory.patch_terms[index] = patch_term(lanes[clip.clip_id])
        self._note_memory()
        scores, ids = self.memory.held_out_scores(config.patch_weight, progress)
        frames = np.concatenate([lanes[clip_id] for clip_id in ids])
        self.info.update(held_out=len(held), trained_clips=len(trained), clips_read=len(normals))
        progress.update(1, 1, f"meta_proto: trained on {len(trained)} clips, {len(held)} held out for the threshold")
        return TrainingScores(scores, frames, ids)

    def _pool(self, trained: list[Clip], segments: dict[str, ClipSegments], progress: Progress) -> EpisodePool:
        """The episodes' items (the trained clips' segments, or their views) and tasks, and the fit report."""
        config = self.config
        tasks, dropped = metadata_tasks(trained, config.min_class_clips, config.domain_task)
        metadata = [t for t in tasks if t.name != "domain"]
        pseudo = config.pseudo_classes or not metadata
        pool = episode_pool(trained, segments, tasks, pseudo, config.segments_per_clip, config.seed, self.device)
        summary = task_summary(tasks)
        if pseudo and metadata:
            summary += f"; and self-supervised pseudo-classes ({len(trained)} clips x {VIEWS} views)"
        self.info.update(metadata_tasks=summary, dropped_tasks=dropped)
        self.info.pop("fallback", None)
        if not pool.tasks:
            reasons = "; ".join(dropped) or "no metadata"
            self.info["fallback"] = (
                f"no metadata tasks ({reasons}) and too few training clips to make an episode "
                f"({len(trained)} clip(s)): the encoder stays untrained"
            )
        elif not metadata:
            self.info["fallback"] = fallback_report(dropped, len(trained), VIEWS)
        said = self.info.get("fallback") or f"metadata tasks: {self.info['metadata_tasks']}"
        progress.update(0, 1, f"meta_proto: {said}")
        for line in dropped if not self.info.get("fallback") else ():
            progress.update(0, 1, f"meta_proto: task dropped: {line}")
        return pool

    def _signature(self, clips: Sequence[Clip]) -> str:
        """The training data and the settings that shape training: a checkpoint of others is not resumed."""
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _SCORING_ONLY}
        text = json.dumps([settings, [(c.clip_id, c.checksum) for c in clips]], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _train(self, pool: EpisodePool, clips: list[Clip], progress: Progress) -> None:
        from engine.training import LoopConfig, Trainer

        config = self.config
        if config.reptile:
            model = ReptileModel(
                self.net,
                pool,
                config.ways,
                config.shots,
                config.queries,
                config.inner_steps,
                config.learning_rate,
                config.meta_step,
            )
            loss = reptile_loss
        else:
            model = EpisodeModel(self.net, pool, config.ways, config.shots, config.queries)
            loss = protonet_loss
        loop = LoopConfig(
            epochs=config.epochs,
            patience=config.epochs + 1,
            batch_size=1,  # one episode per step
            learning_rate=config.meta_step if config.reptile else config.learning_rate,
            seed=config.seed,
            warm_up_epochs=config.warm_up_epochs,
            optimiser="sgd" if config.reptile else "adamw",
            checkpoint_every_s=5.0,
        )
        with tempfile.TemporaryDirectory(prefix="earmark-meta_proto-") as scratch:
            folder = Path(self.training_folder) if self.training_folder is not None else Path(scratch)
            if not self.resume and self.training_folder is not None and folder.exists():
                shutil.rmtree(folder)  # a fresh fit: nothing of an earlier one may be taken up
            trainer = Trainer(
                model,
                folder,
                loop,
                self.device,
                loss,
                None,
                "",
                self._signature(clips),
                label="meta_proto: ",
                branches=self.branches(),
                frozen=(config.freeze,) if config.freeze else (),
                warm_up=("encoder",) if config.warm_up_epochs else (),
                durable=self.training_folder is not None,
                min_batch=1,  # a batch is one episode (its segments are the batch norm's batch)
            )
            outcome = trainer.fit(torch.arange(config.episodes, dtype=torch.float32), {}, progress, resume=self.resume)
        self.history = outcome.history
        self.info.update(
            epochs_trained=outcome.last_epoch,
            steps=outcome.steps,
            resumed_from=outcome.resumed_from,
            final_loss=outcome.history[-1]["train_loss"] if outcome.history else None,
        )
        self.net.eval()

    def _adapt(self, clips: list[Clip], segments: dict[str, ClipSegments]) -> None:
        """A few ProtoNet steps on the target domain's trained normals (episodes.adapt)."""
        if adapt(self.net, clips, segments, self.config, self.device):
            self.info["adapted_on"] = len(clips)

    # -- embeddings, memory and maps -------------------------------------------------------------------------
    def _embed(
        self, clips: Sequence[Clip], segments: dict[str, ClipSegments], progress: Progress
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """clip_id -> (segment embeddings [S, D], patch maps [S, P, R, Tc]) on the CPU."""
        self.net.eval()
        found = {}
        with torch.inference_mode():
            for index, clip in enumerate(clips):
                progress.update(index, len(clips), f"meta_proto: embedding {index}/{len(clips)}")
                parts = [self._forward(chunk) for chunk in segments[clip.clip_id].segments.split(_BATCH)]
                found[clip.clip_id] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return found

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.net.feature_map(x.to(self.device))
        return self.net.pool(fmap).float().cpu(), fmap.float().cpu()

    def _class_key(self, clip: Clip) -> str:
        """The clip's metadata class: its values in the fit's tasks ("" without tasks: its own prototype)."""
        values = {"section": clip.section_id}
        return "|".join(f"{n}={values.get(n, clip.attributes.get(n)) or '?'}" for n in self.task_names)

    def _remember(
        self, clip: Clip, embedded: tuple[torch.Tensor, torch.Tensor], held: bool, term: float = float("nan")
    ) -> None:
        vectors, fmaps = embedded
        columns = fmaps.permute(0, 3, 2, 1).flatten(0, 1)  # [S * Tc, R, P]: one column of patches each
        self.memory.add(clip.clip_id, clip.domain, self._class_key(clip), vectors, columns, held, term)

    def _map(
        self,
        clip: Clip,
        segments: ClipSegments,
        embedded: tuple[torch.Tensor, torch.Tensor],
        left_out: bool = False,
        banks: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The clip's anomaly map [R, B] and its columns' spans; `left_out`: a clip of the memory, measured
        against the others."""
        fmaps = embedded[1]
        exclude = self.memory.ids.index(clip.clip_id) if left_out else None
        columns = fmaps.permute(0, 3, 2, 1)  # [S, Tc, R, P]
        # the bank gathered once per clip, or once per scoring batch and domain (`banks`), not per segment
        banks = {} if banks is None else banks
        key = (clip.domain or "source", exclude)
        if key not in banks:
            banks[key] = self.memory.bank(clip.domain, exclude)
        maps = [self.memory.patch_distances(c, clip.domain, bank=banks[key]).T.numpy() for c in columns]
        return self._grid(maps, clip, segments)

    def _grid(self, maps: list[np.ndarray], clip: Clip, segments: ClipSegments) -> tuple[np.ndarray, np.ndarray]:
        config = self.config.segments
        return clip_map(maps, segments.time_spans_s, segments.frames, config.frame_s, config.frames, clip.duration_s)

    def _lane_of(self, maps: list[np.ndarray], clip: Clip, segments: ClipSegments) -> np.ndarray:
        return self._grid(maps, clip, segments)[0].mean(axis=0)

    def _lane(self, clip, segments, embedded, left_out: bool = False) -> np.ndarray:
        return self._map(clip, segments, embedded, left_out)[0].mean(axis=0)

    # -- enrolment and scoring -------------------------------------------------------------------------------
    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips join the memory as prototypes (of their domain and class) and patches; the network is
        not retrained. Their scores, left out of the prototypes, join the held-out ones."""
        segments = self._segments(clips, progress)
        clips = [c for c in clips if c.clip_id in segments]
        embedded = self._embed(clips, segments, progress.child(""))
        clips = [dataclasses.replace(clip, domain=clip.domain or "target") for clip in clips]
        # each measured before any of them joins, as an unseen clip is
        terms = [patch_term(self._lane(c, segments[c.clip_id], embedded[c.clip_id])) for c in clips]
        for clip, term in zip(clips, terms, strict=True):
            self._remember(clip, embedded[clip.clip_id], True, term)
        self.memory.limit_columns(self.config.patch_bank, self.config.seed)
        self.memory.learn_scales(self.config.domain_norm, progress)
        self._note_memory()
        scores, ids = self.memory.held_out_scores(self.config.patch_weight, progress)
        # The frame threshold stays as fitting learnt it
        return TrainingScores(scores, np.zeros(0), ids)

    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections = []
        rows = None
        for start in range(0, len(clips), SCORED_AT_ONCE):
            progress.update(start, len(clips), f"meta_proto: {len(detections)} clips scored")
            batch = clips[start : start + SCORED_AT_ONCE]
            segments = self._segments(batch, progress.child(""))
            batch = [c for c in batch if c.clip_id in segments]
            embedded = self._embed(batch, segments, progress.child(""))
            banks: dict = {}
            for clip in batch:
                grid, spans = self._map(clip, segments[clip.clip_id], embedded[clip.clip_id], banks=banks)
                if rows is None:
                    rows = band_spans_hz(self.config.segments, grid.shape[0])
                lane = grid.mean(axis=0)
                score = self.memory.clip_score(embedded[clip.clip_id][0], clip.domain)
                if self.config.patch_weight:
                    score += self.config.patch_weight * patch_term(lane)
                detections.append(
                    Detection(
                        clip.clip_id,
                        score,
                        False,
                        lane,
                        spans.mean(axis=1),
                        anomaly_map=grid,
                        map_freq_spans_hz=rows,
                        map_time_spans_s=spans,
                    )
                )
        progress.update(len(clips), len(clips), f"meta_proto: {len(detections)} clips scored")
        return detections

    # -- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        state.update(self.memory.state())
        return state

    def _note_memory(self) -> None:
        """The memory's clips and classes and the tasks that name them, saved in model.json (text, not tensors)."""
        self.info.update(
            memory_ids=list(self.memory.ids), memory_classes=list(self.memory.classes), task_names=self.task_names
        )

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net = self._network()
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net.eval()
        info = self.info
        self.memory = Memory.from_state(
            state,
            info["memory_ids"],
            info["memory_classes"],
            self.config.prototypes,
            self.config.score,
            self.config.support,
        )
        self.task_names = list(info.get("task_names", []))
