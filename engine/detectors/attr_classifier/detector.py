"""`attr_classifier`: a small conv encoder on log-mel segments trained with an ArcFace (or sub-cluster AdaCos)
head to tell the section x attribute classes of a group's normal training clips apart (self-supervised
pseudo-classes where the clips carry no metadata); the learnt clip embeddings are scored by a k-NN back-end
(k = 1, cosine) with a source and a target bank. See README.md in this folder for the method, its settings
and its figures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.attr_classifier.classes import ClassPlan, plan_classes
from engine.detectors.attr_classifier.config import AttrClassifierConfig
from engine.detectors.attr_classifier.embedding import ClipView, clip_views
from engine.detectors.attr_classifier.memory import DOMAINS, ClipBanks, PatchBank
from engine.detectors.attr_classifier.model import AttributeNet, make_head
from engine.detectors.attr_classifier.one_clip import one_clip_held_out
from engine.detectors.attr_classifier.pretrained import ast_encoder, ast_windows
from engine.detectors.base import Detection, Detector, TrainingScores
from engine.detectors.held_out import held_out_folds
from engine.detectors.metadata.network import ConvEmbedding
from engine.detectors.metadata.segments import ClipSegments, band_spans_hz, clip_segments
from engine.errors import EarmarkError
from engine.jobs import Progress

#: Clips read and scored at once.
SCORED_AT_ONCE = 16
#: Held-out frame scores kept for the frame threshold.
_KEPT_FRAMES = 20000
#: Settings that change only how a trained network scores: a resumed training may differ in them.
_SCORING_ONLY = {
    "threshold_quantile",
    "frame_quantile",
    "merge_gap_s",
    "min_region_s",
    "k",
    "distance",
    "domain_norm",
    "patch_bank_size",
    "score",
}


class AttrClassifierDetector(Detector):
    key = "attr_classifier"
    title = "Attribute classifier (ArcFace) + k-NN"
    Config = AttrClassifierConfig
    config: AttrClassifierConfig
    by_default = False  # loses to patch_memory and knn on the condition matrix (README): fitted by name only
    #: Seconds of computing per second of training audio per epoch (the fit estimate): the quick condition
    #: matrix's groups of 50 + 10 four-second clips fitted in about 6 s at 20 epochs on 2 shared cores
    #: (0.00125), rounded up for the smaller groups' fixed costs.
    fit_cost = 0.0015

    @classmethod
    def fit_seconds(cls, config: AttrClassifierConfig, train_s: float) -> float:
        """Expected seconds to fit one group on `train_s` seconds of training audio: fine-tuning the AST
        costs what it costs `ast_ae` (measured there), the conv encoder `fit_cost`."""
        from engine.detectors.ast_ae.detector import AstAEDetector

        cost = AstAEDetector.fine_tuning_cost if config.encoder == "pretrained" else cls.fit_cost
        return cost * train_s * max(int(config.epochs), 1)

    def __init__(self, config: AttrClassifierConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.model: AttributeNet | None = None
        self.banks = ClipBanks(self.config.embedding_dim, self.config.k, self.config.distance)
        self.patches = PatchBank(self.config.patch_bank_size, self.config.seed)
        self.held_out_scores, self.held_out_frames = np.zeros(0), np.zeros(0)
        self.held_out_ids: list[str] | None = []

    # -- the network -------------------------------------------------------------------------------------
    def network(self) -> AttributeNet:
        """The network for the classes fitting found (before a fit: two classes, for `branches`)."""
        if self.model is None:
            self.model = self._build(self.info.get("head_classes") or [2])
        return self.model

    def branches(self) -> dict[str, torch.nn.Module]:
        model = self.network()
        return {"encoder": model.encoder, "head": model.heads}

    def _build(
        self, head_classes: list[int], encoder: torch.nn.Module | None = None, saved: bool = False
    ) -> AttributeNet:
        """The network with one head per entry of `head_classes` on `encoder` (a new one when None; from
        the saved model's AST architecture with `saved`)."""
        config = self.config
        with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights, not the global state
            torch.manual_seed(config.seed)
            if encoder is None:
                encoder = (
                    ast_encoder(self.info, config.embedding_dim, saved)
                    if config.encoder == "pretrained"
                    else ConvEmbedding(config.embedding_dim, frequency_rows=config.frequency_rows)
                )
            heads = [
                make_head(config.head, config.embedding_dim, n, config.margin, config.scale, config.sub_clusters)
                for n in head_classes
            ]
        return AttributeNet(encoder, heads).to(self.device)

    def _segments(self, clips: Sequence[Clip], progress: Progress) -> dict[str, ClipSegments]:
        if self.config.encoder == "pretrained":
            ast = self.network().encoder.model.config
            return ast_windows(clips, ast.max_length, ast.patch_size, progress)
        return clip_segments(self.cache, clips, self.config.segments, progress)

    def _row_spans_hz(self, rows: int) -> np.ndarray:
        """(low, high) Hz of the encoder's feature-map rows."""
        if self.config.encoder == "pretrained":
            from engine.encoders.kaldi import row_spans_hz

            ast = self.network().encoder.model.config
            return row_spans_hz(rows, ast.patch_size, ast.frequency_stride)
        return band_spans_hz(self.config.segments, rows)

    # -- fitting ------------------------------------------------------------------------------------------
    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        self.model = None  # a fresh network for every fit
        for key in ("head_classes", "metadata_tasks", "dropped_tasks", "classes", "classes_note", "heads", "fallback"):
            self.info.pop(key, None)
        for key in ("weights", "ast_config"):  # building the AST says them again
            self.info.pop(key, None)
        segments = self._segments(normals, progress.child("", span=(0.0, 0.05)))
        normals = [c for c in normals if c.clip_id in segments]
        if not normals:
            raise EarmarkError(
                "attr_classifier: none of the training clips could be read or is long enough; check them with "
                "`earmark info`"
            )
        held: list[Clip] = []
        if len(normals) >= 2:
            folds = held_out_folds(
                len(normals),
                max(2, round(1 / self.config.held_out_fraction)),
                self.config.seed,
                [c.domain or "source" for c in normals],
            )
            held = [normals[i] for i in folds[0]]
        trained = [c for c in normals if c not in held]
        machines, noises = self._supplemental(supplemental, segments, progress)
        plan = plan_classes(trained + machines, segments, self.config)
        if noises and plan.inputs.dim() == 4:
            plan = plan.mixed_with(torch.cat([segments[c.clip_id].segments for c in noises]), self.config.seed)
        self.info.update(plan.report())
        progress.update(0, 1, f"attr_classifier: {plan.describe()}")
        # the AST read to cut the windows is the fresh one to fine-tune: not loaded twice
        self.model = self._build(plan.head_classes, self.model.encoder if self.model is not None else None)
        self.info["encoder"] = self.config.encoder
        self._train(trained + machines + noises, plan, progress.child("", span=(0.05, 0.9)))
        views = self._views(normals, segments)
        self.banks = ClipBanks(self.config.embedding_dim, self.config.k, self.config.distance)
        self.patches = PatchBank(self.config.patch_bank_size, self.config.seed)
        self._bank(trained, views)
        if held:
            scores, grids = self._scores([views[c.clip_id] for c in held])
            frames = np.concatenate([grid.mean(axis=0) for grid in grids])
        else:  # one clip: nothing to hold out; stretches of it, each against the rest of it
            [only] = trained
            scores, frames = one_clip_held_out(
                only.clip_id,
                views[only.clip_id],
                segments[only.clip_id],
                self.config.score,
                self.config.distance,
                progress,
            )
        if len(frames) > _KEPT_FRAMES:
            frames = frames[np.sort(np.random.default_rng(0).choice(len(frames), _KEPT_FRAMES, replace=False))]
        self._bank(held, views)  # the held-out clips are normals too: once scored, they join the banks
        self.held_out_scores, self.held_out_frames = scores, frames.astype(np.float64)
        # a single clip's scores are its stretches': no one clip's score to name
        self.held_out_ids = [c.clip_id for c in held] if held else None
        self.info.update(held_out=len(held), trained_clips=len(trained))
        progress.update(1, 1, f"attr_classifier: trained on {len(trained)} clips, {len(held)} held out")
        ids = None if self.held_out_ids is None else list(self.held_out_ids)
        return TrainingScores(self.held_out_scores, self.held_out_frames, ids)

    def _supplemental(
        self, supplemental: list[Clip], segments: dict[str, ClipSegments], progress: Progress
    ) -> tuple[list[Clip], list[Clip]]:
        """(clean-machine clips to train on, noise-only clips to mix in) when `supplemental` is on; their
        segments join `segments`."""
        self.info.pop("supplemental", None)
        if not self.config.supplemental or not supplemental:
            return [], []
        segments.update(self._segments(supplemental, progress.child("")))
        found = [c for c in supplemental if c.clip_id in segments]
        machines = [  # what kind of supplemental clip it is is no class of the machine's
            dataclasses.replace(c, attributes={k: v for k, v in c.attributes.items() if k != "supp_type"})
            for c in found
            if c.attributes.get("supp_type") == "machine"
        ]
        noises = [c for c in found if c.attributes.get("supp_type", "noise") == "noise"]
        self.info["supplemental"] = (
            f"{len(machines)} clean-machine clip(s) trained on, {len(noises)} noise clip(s) mixed in"
        )
        return machines, noises

    def _bank(self, clips: Sequence[Clip], views: dict[str, ClipView], domain: str | None = None) -> None:
        """The clips' embeddings join the bank of their domain (or of `domain`), their patches the patch bank."""
        for bank in DOMAINS:  # each bank's statistics computed once, however many clips join
            joining = [c for c in clips if (domain or (c.domain if c.domain in DOMAINS else "source")) == bank]
            if joining:
                self.banks.add(bank, torch.stack([views[c.clip_id].embedding for c in joining]))
        if clips:
            self.patches.add([views[c.clip_id].patches for c in clips], [c.clip_id for c in clips])

    def _scores(self, views: Sequence[ClipView]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The clips' scores and their anomaly maps [F, T] (whose column means are the frame lanes), against
        the banks as they are."""
        grids = [self.patches.map(view.patches) for view in views]
        if self.config.score == "patches":
            return np.array([float(grid.mean()) for grid in grids]), grids
        embeddings = torch.stack([view.embedding for view in views])
        return self.banks.scores(embeddings, self.config.domain_norm), grids

    def _views(self, clips: Sequence[Clip], segments: dict[str, ClipSegments]) -> dict[str, ClipView]:
        return clip_views(self.network(), clips, segments, self._row_spans_hz, self._batch())

    def _batch(self) -> int:
        return max(4 * self.config.batch_size, 64)

    def _signature(self, clips: Sequence[Clip], plan: ClassPlan) -> str:
        """The training data, its classes and the settings that shape training: a checkpoint of others is
        not resumed."""
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _SCORING_ONLY}
        text = json.dumps(
            [settings, self.info.get("weights"), plan.signature(), [(c.clip_id, c.checksum) for c in clips]],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _train(self, clips: list[Clip], plan: ClassPlan, progress: Progress) -> None:
        from engine.training import LoopConfig, Trainer

        config = self.config
        model = self.network()
        loop = LoopConfig(
            epochs=config.epochs,
            patience=config.epochs + 1,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate or (5e-5 if config.encoder == "pretrained" else 1e-3),
            seed=config.seed,
            warm_up_epochs=config.warm_up_epochs,
        )
        with tempfile.TemporaryDirectory(prefix="earmark-attr_classifier-") as scratch:
            folder = Path(self.training_folder) if self.training_folder is not None else Path(scratch)
            if not self.resume and self.training_folder is not None and folder.exists():
                shutil.rmtree(folder)  # a fresh fit: nothing of an earlier one may be taken up
            trainer = Trainer(
                model,
                folder,
                loop,
                self.device,
                model.loss,
                None,
                "",
                self._signature(clips, plan),
                label="attr_classifier: ",
                branches=self.branches(),
                frozen=(config.freeze,) if config.freeze else (),
                warm_up=("encoder",) if config.warm_up_epochs else (),
                durable=self.training_folder is not None,
                min_batch=2,  # batch norm
            )
            outcome = trainer.fit(plan.inputs, plan.targets(), progress, resume=self.resume)
        self.history = outcome.history
        self.info.update(
            epochs_trained=outcome.last_epoch,
            steps=outcome.steps,
            resumed_from=outcome.resumed_from,
            final_loss=outcome.history[-1]["train_loss"] if outcome.history else None,
        )
        model.eval()

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips join the target bank and a share of their patches the patch bank; the network is not
        retrained. Each is scored before they join (as an unseen clip is, by the model as it was), so its
        score joins the held-out ones; then they join at once."""
        segments = self._segments(clips, progress)
        clips = [c for c in clips if c.clip_id in segments]
        views = self._views(clips, segments)
        new = self._scores([views[c.clip_id] for c in clips])[0].tolist() if clips else []
        self._bank(clips, views, domain="target")
        earlier = (
            self.held_out_ids if self.held_out_ids is not None else self.earlier_held_out_ids(len(self.held_out_scores))
        )
        self.held_out_ids = None if earlier is None else earlier + [c.clip_id for c in clips]
        self.held_out_scores = np.concatenate([self.held_out_scores, new])
        # The frame threshold stays as fitting learnt it
        return TrainingScores(self.held_out_scores, np.zeros(0), self.held_out_ids)

    # -- scoring -------------------------------------------------------------------------------------------
    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections = []
        for start in range(0, len(clips), SCORED_AT_ONCE):
            progress.update(start, len(clips), f"attr_classifier: {len(detections)} clips scored")
            batch = clips[start : start + SCORED_AT_ONCE]
            segments = self._segments(batch, progress.child(""))
            batch = [c for c in batch if c.clip_id in segments]
            if not batch:
                continue
            views = self._views(batch, segments)
            scores, grids = self._scores([views[c.clip_id] for c in batch])
            for clip, score, grid in zip(batch, scores, grids, strict=True):
                view = views[clip.clip_id]
                detections.append(
                    Detection(
                        clip.clip_id,
                        float(score),
                        False,
                        grid.mean(axis=0),
                        view.time_spans_s.mean(axis=1),
                        anomaly_map=grid,
                        map_freq_spans_hz=view.freq_spans_hz,
                        map_time_spans_s=view.time_spans_s,
                    )
                )
        progress.update(len(clips), len(clips), f"attr_classifier: {len(detections)} clips scored")
        return detections

    # -- state ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"model.{k}": v for k, v in self.network().state_dict().items()}
        state.update(self.banks.state())
        state["patches"] = self.patches.rows
        state["held_out.clip_scores"] = torch.from_numpy(np.asarray(self.held_out_scores, dtype=np.float64))
        state["held_out.frame_scores"] = torch.from_numpy(np.asarray(self.held_out_frames, dtype=np.float64))
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "head_classes" not in self.info:
            raise KeyError("head_classes")
        self.model = self._build(list(self.info["head_classes"]), saved=True)
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model.eval()
        self.banks = ClipBanks.from_state(state, self.config.k, self.config.distance)
        self.patches = PatchBank(self.config.patch_bank_size, self.config.seed)
        self.patches.rows = state["patches"].float()
        self.held_out_scores = state["held_out.clip_scores"].numpy()
        self.held_out_frames = state["held_out.frame_scores"].numpy()
        self.held_out_ids = None  # known again from the held-out scores saved with the model
