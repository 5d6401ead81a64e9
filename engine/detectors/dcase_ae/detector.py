"""`dcase_ae`: the official DCASE 2023-2025 Task 2 baseline auto-encoder, in its MSE and selective
Mahalanobis modes. See README.md in this folder for the method and its figures.

The network trains through `engine.training.Trainer` (branches "encoder" and "decoder", loss part
"reconstruction"), in `training_folder` when `runs.fit` gives one (so a cancelled fit resumes there), else
in a temporary folder removed afterwards. Each network of a fit trains in its own subfolder: `network` (the
one kept) and, for a cross-fitted group, `fold_1` ... `fold_<folds>`."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.band_maps import band_map, map_fields
from engine.detectors.base import Detection, Detector, TrainingScores
from engine.detectors.dcase_ae.config import MODES, DcaseAEConfig
from engine.detectors.dcase_ae.model import AENet, stack_frames
from engine.detectors.held_out import held_out_folds
from engine.device import autocast
from engine.errors import EarmarkError
from engine.jobs import Progress
from engine.training import LoopConfig, Trainer

#: An epoch of a small group takes milliseconds, a checkpoint tens of them: one every few seconds at most.
CHECKPOINT_EVERY_S = 5.0
#: Settings that change only how a trained network scores: a checkpoint made with others still resumes.
_SCORING_ONLY = ("mode", "ridge", "threshold_quantile", "frame_quantile", "merge_gap_s", "min_region_s")
#: Training-normal frame scores kept for re-learning the frame threshold after enrolment.
_KEPT_FRAMES = 20000


class DcaseAEDetector(Detector):
    key = "dcase_ae"
    title = "DCASE baseline auto-encoder"
    fit_cost = 0.003  # measured: engine.fit_estimate
    Config = DcaseAEConfig
    config: DcaseAEConfig

    def __init__(self, config: DcaseAEConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        dim = self.config.n_mels * self.config.frames
        with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights, without touching global state
            torch.manual_seed(self.config.seed)
            self.model = AENet(dim).to(self.device)
        # Residual statistics per domain (count, sum, sum of outer products), so enrolling adds to them.
        self.stats = {
            domain: [0.0, torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dim, dtype=torch.float64)]
            for domain in ("source", "target")
        }
        self.precisions: dict[str, torch.Tensor] = {}
        self._roots: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # domain -> (precision, its square root)
        # Per scoring mode, (clip scores, frame scores) of training normals the network did not train on.
        self.held_out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.held_out_ids: list[str] | None = None  # whose those clip scores are (every mode's, same order)
        # The input standardisation (zero and one: none), learnt with the network from its training clips.
        self.input_mean, self.input_scale = torch.zeros(dim), torch.ones(dim)

    # -- fitting ----------------------------------------------------------------------------------------
    def _vectors(self, clips: Sequence[Clip], progress: Progress) -> dict[str, torch.Tensor]:
        features = self.cache.features(clips, self.config.features, progress)
        return {clip_id: stack_frames(torch.from_numpy(mel), self.config.frames) for clip_id, mel in features.items()}

    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        vectors = self._vectors(normals, progress)
        normals = [c for c in normals if c.clip_id in vectors and len(vectors[c.clip_id])]
        if not normals:
            raise EarmarkError(
                "dcase_ae: none of the training clips could be read or is long enough "
                f"({self.config.frames} frames); check them with `earmark info`"
            )
        with self._workspace() as folder:
            self._fit_networks(normals, vectors, folder, progress)
        self.info["held_out"] = len(self.held_out[self.config.mode][0])
        return self._held_out_training()

    def _fit_networks(
        self, normals: list[Clip], vectors: dict[str, torch.Tensor], folder: Path, progress: Progress
    ) -> None:
        config = self.config
        domains = [c.domain or "source" for c in normals]
        if len(normals) >= config.cross_fit_below:  # one fold held out of the network kept: no extra training
            folds = held_out_folds(len(normals), max(2, round(1 / config.held_out_fraction)), config.seed, domains)
            held = [normals[i] for i in folds[0]]
            self._fit_on([c for c in normals if c not in held], vectors, progress, folder / "network")
            self.held_out = self._scores_by_mode(held, vectors)
            self.held_out_ids = [c.clip_id for c in held]
        elif len(normals) > 1:  # cross-fitted: every clip scored by a network trained without it
            folds = held_out_folds(len(normals), config.folds, config.seed, domains)
            parts = []
            for index, fold in enumerate(folds):
                model = DcaseAEDetector(config, cache=self.cache, device=self.device)
                model.training_folder, model.resume = self.training_folder, self.resume
                model._fit_on(
                    [c for i, c in enumerate(normals) if i not in set(fold)],
                    vectors,
                    progress.child(f"threshold fold {index + 1}/{len(folds)}: "),
                    folder / f"fold_{index + 1}",
                )
                parts.append(model._scores_by_mode([normals[i] for i in fold], vectors))
            self.held_out = {
                mode: (np.concatenate([p[mode][0] for p in parts]), np.concatenate([p[mode][1] for p in parts]))
                for mode in MODES
            }
            self.held_out_ids = [normals[i].clip_id for fold in folds for i in fold]
            self._fit_on(normals, vectors, progress, folder / "network")
        else:  # one clip: nothing to hold out; its own scores must do
            self._fit_on(normals, vectors, progress, folder / "network")
            self.held_out = self._scores_by_mode(normals, vectors)
            self.held_out_ids = [c.clip_id for c in normals]

    @contextlib.contextmanager
    def _workspace(self) -> Iterator[Path]:
        """The folder the fit trains in: `training_folder` (emptied first unless resuming), or a temporary one
        that goes when the fit ends."""
        if self.training_folder is None:
            with tempfile.TemporaryDirectory(prefix="earmark-dcase_ae-") as temporary:
                yield Path(temporary)
            return
        folder = Path(self.training_folder)
        if not self.resume and folder.exists():  # a fresh fit: no network of an earlier one may be taken up
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder

    def _fit_on(self, clips: list[Clip], vectors: dict[str, torch.Tensor], progress: Progress, folder: Path) -> None:
        """Train the network on the clips in `folder`, and learn their residual statistics."""
        data = torch.cat([vectors[c.clip_id] for c in clips])
        if self.config.standardise and len(data) >= 2:
            self.input_mean, self.input_scale = data.mean(0), data.std(0).clamp_min(1e-3)
        self._train(self._input(data), progress, folder, self._signature(clips))
        for clip in clips:
            self._add_residuals(clip.domain or "source", vectors[clip.clip_id])
        self._update_precisions()

    def _scores_by_mode(
        self,
        clips: list[Clip],
        vectors: dict[str, torch.Tensor],
        precisions: list[dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per scoring mode, the clips' scores and frame scores (with each clip's own precisions, if given)."""
        found = {}
        for mode in MODES:
            scored = [
                self._score_vectors(vectors[c.clip_id], mode, precisions[i] if precisions else None)
                for i, c in enumerate(clips)
            ]
            found[mode] = (
                np.asarray([score for score, _ in scored], dtype=np.float64),
                np.concatenate([frames for _, frames in scored]) if scored else np.zeros(0),
            )
        return found

    def _held_out_training(self) -> TrainingScores:
        clip_scores, frame_scores = self.held_out[self.config.mode]
        if len(frame_scores) > _KEPT_FRAMES:
            keep = np.random.default_rng(0).choice(len(frame_scores), _KEPT_FRAMES, replace=False)
            frame_scores = frame_scores[np.sort(keep)]
        ids = self.held_out_ids if self.held_out_ids is not None else self.earlier_held_out_ids(len(clip_scores))
        return TrainingScores(
            clip_scores, frame_scores, ids if ids is not None and len(ids) == len(clip_scores) else None
        )

    def branches(self) -> dict[str, torch.nn.Module]:
        """The parts of the network that train (and can be frozen) on their own."""
        return {"encoder": self.model.encoder, "decoder": self.model.decoder}

    def _signature(self, clips: list[Clip]) -> str:
        """What a network's training depends on: its clips (and their contents) and the training settings."""
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _SCORING_ONLY}
        clips_said = sorted((c.clip_id, c.checksum) for c in clips)
        return hashlib.sha1(json.dumps([settings, clips_said], default=str).encode()).hexdigest()[:16]

    def _train(self, data: torch.Tensor, progress: Progress, folder: Path, signature: str) -> None:
        """MSE reconstruction, Adam, no early stopping (the baseline trains every epoch); a network that
        finished in `folder` before is taken as it is when resuming, an interrupted one continues."""
        config = self.config
        loop = LoopConfig(
            epochs=config.epochs,
            patience=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            seed=config.seed,
            warm_up_epochs=config.warm_up_epochs,
            checkpoint_every_s=CHECKPOINT_EVERY_S,
        )

        def reconstruction(outputs: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"reconstruction": torch.nn.functional.mse_loss(outputs, targets["input"])}

        trainer = Trainer(
            self.model,
            folder,
            loop,
            self.device,
            reconstruction,
            None,
            "",
            signature,
            "dcase_ae: ",
            branches=self.branches(),
            frozen=[config.freeze] if config.freeze else [],
            warm_up=["encoder"],
            durable=self.training_folder is not None,
        )
        outcome = trainer.fit(data, {"input": data}, progress, resume=self.resume)
        self.history = outcome.history
        self.info.update(
            final_loss=outcome.history[-1]["train_loss"],
            epochs_trained=outcome.last_epoch,
            steps=outcome.steps,
            resumed_from=outcome.resumed_from,  # the epoch a resumed training went on after (None: not resumed)
        )
        self.model.eval()

    def frame_reconstruction_errors(
        self,
        clips: Sequence[Clip],
        progress: Progress | None = None,
    ) -> dict[str, np.ndarray]:
        """Per readable clip, the mean squared reconstruction error of each input window (five frames, in
        standardised units, whatever the scoring mode): the MSE mode's frame lane."""
        self._require_fitted()
        progress = progress or Progress()
        vectors = self._vectors(clips, progress)
        return {
            clip_id: self._residuals(rows).pow(2).mean(dim=1).cpu().numpy() if len(rows) else np.zeros(0)
            for clip_id, rows in vectors.items()
        }

    def _input(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors.to(self.device) - self.input_mean.to(self.device)) / self.input_scale.to(self.device)

    def _residuals(self, vectors: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device):
            data = self._input(vectors)
            return (data - self.model(data)).float()

    def _add_residuals(self, domain: str, vectors: torch.Tensor) -> None:
        residual = self._residuals(vectors).double().cpu()
        stats = self.stats[domain]
        stats[0] += len(residual)
        stats[1] += residual.sum(0)
        stats[2] += residual.T @ residual

    def _update_precisions(self) -> None:
        self.precisions = self._precisions_of(self.stats)

    def _precisions_of(self, stats: dict[str, list]) -> dict[str, torch.Tensor]:
        covariances = {}
        for domain, (count, total, outer) in stats.items():
            if count >= 2:
                mean = total / count
                covariances[domain] = (outer - count * torch.outer(mean, mean)) / (count - 1)
        if "target" not in covariances:  # as the baseline: no target clips -> the source covariance serves
            covariances["target"] = covariances["source"]
        if "source" not in covariances:
            covariances["source"] = covariances["target"]
        precisions = {}
        for domain, cov in covariances.items():
            ridge = self.config.ridge * float(torch.diagonal(cov).mean()) + 1e-9
            cov = cov + ridge * torch.eye(len(cov), dtype=cov.dtype)
            precisions[domain] = torch.linalg.inv(cov).float().to(self.device)
        return precisions

    def switch_mode(self, mode: str, normals: Sequence[Clip], progress: Progress | None = None) -> None:
        """Score the other way with the same trained network (both modes share it and its residual
        statistics); the thresholds are learnt again from the held-out scores fitting kept for each mode
        (a model saved before they were kept scores `normals`, the clips it was fitted on)."""
        self.config = DcaseAEConfig(**{**dataclasses.asdict(self.config), "mode": mode})
        if mode not in self.held_out:
            normals = [c for c in normals if c.split == "train" and c.label != "anomaly"]
            vectors = self._vectors(normals, progress or Progress())
            normals = [c for c in normals if c.clip_id in vectors and len(vectors[c.clip_id])]
            self.held_out = self._scores_by_mode(normals, vectors)
            self.held_out_ids = [c.clip_id for c in normals]
        training = self._held_out_training()
        self._learn_thresholds(training)
        self._learn_normalisation(training, normals)

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips' residuals join the target statistics. The network never trained on them, and each is
        scored with statistics that leave its own residuals out, so they join the held-out scores."""
        vectors = self._vectors(clips, progress)
        clips = [c for c in clips if c.clip_id in vectors and len(vectors[c.clip_id])]
        contributions = []
        for clip in clips:
            residual = self._residuals(vectors[clip.clip_id]).double().cpu()
            contributions.append((len(residual), residual.sum(0), residual.T @ residual))
            self._add_residuals("target", vectors[clip.clip_id])
        self._update_precisions()
        without = []
        for count, total, outer in contributions:
            stats = dict(self.stats)
            kept = self.stats["target"]
            stats["target"] = [kept[0] - count, kept[1] - total, kept[2] - outer]
            without.append(self._precisions_of(stats))
        new = self._scores_by_mode(clips, vectors, without)
        earlier_ids = self._held_out_training().clip_ids if self.config.mode in self.held_out else []
        self.held_out_ids = None if earlier_ids is None else earlier_ids + [c.clip_id for c in clips]
        self.held_out = {
            mode: tuple(
                np.concatenate([old, extra])
                for old, extra in zip(self.held_out.get(mode, (np.zeros(0), np.zeros(0))), new[mode], strict=True)
            )
            for mode in MODES
        }
        training = self._held_out_training()
        # The frame threshold stays as fitting set it
        return TrainingScores(training.clip_scores, np.zeros(0), training.clip_ids)

    # -- scoring ---------------------------------------------------------------------------------------------
    def _score_vectors(
        self, vectors: torch.Tensor, mode: str | None = None, precisions: dict[str, torch.Tensor] | None = None
    ) -> tuple[float, np.ndarray]:
        """(clip score, per-vector scores), in `mode` (the configured one by default). MSE: mean squared
        residual. Mahalanobis: the smaller of the source and target clip means, as the baseline; per vector,
        the smaller of the two distances."""
        residual = self._residuals(vectors)
        if (mode or self.config.mode) == "mse":
            frames = residual.pow(2).mean(dim=1)
            return float(frames.mean()), frames.cpu().numpy()
        precisions = precisions or self.precisions
        distances = [((residual @ precisions[d]) * residual).sum(dim=1) for d in ("source", "target")]
        score = min(float(distances[0].mean()), float(distances[1].mean()))
        return score, torch.minimum(*distances).cpu().numpy()

    def _score_with_shares(self, residual: torch.Tensor) -> tuple[float, np.ndarray, np.ndarray]:
        """`_score_vectors` in the configured mode, and [windows, n_mels]: each window's score split over
        mel bands, so a row's mean is the window's score. MSE: the band's squared residual, averaged over the
        window's frames. Mahalanobis: the residual whitened by the symmetric square root of a domain's
        precision (its squares sum to the distance, and each stays tied to its own band and frame), for the
        domain the window is closer to, squared, averaged over the frames and times n_mels x frames."""
        n_mels, frames = self.config.n_mels, self.config.frames
        if self.config.mode == "mse":
            parts = residual.pow(2)
            lane = parts.mean(dim=1)
            score = float(lane.mean())
        else:  # the distances from the whitened residuals: the same two products as `_score_vectors`'
            whitened = [residual @ self._precision_root(d) for d in ("source", "target")]
            distances = [w.pow(2).sum(dim=1) for w in whitened]
            score = min(float(distances[0].mean()), float(distances[1].mean()))
            lane = torch.minimum(*distances)
            parts = torch.where((distances[0] <= distances[1])[:, None], *whitened).pow(2) * (n_mels * frames)
        # a row is frame 0's n_mels bands, then frame 1's, ... (stack_frames)
        return score, lane.cpu().numpy(), parts.view(len(parts), frames, n_mels).mean(dim=1).cpu().numpy()

    def _precision_root(self, domain: str) -> torch.Tensor:
        """The symmetric square root of a domain's precision, kept until the precision changes."""
        precision = self.precisions[domain]
        kept = self._roots.get(domain)
        if kept is None or kept[0] is not precision:
            matrix = precision.double().cpu()
            values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
            root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
            kept = self._roots[domain] = (precision, root.float().to(self.device))
        return kept[1]

    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        vectors = self._vectors(clips, progress)
        features = self.config.features
        offset = (self.config.frames - 1) / 2 * features.hop_length / features.sample_rate
        detections = []
        for clip in clips:
            if clip.clip_id not in vectors:
                continue
            if not len(vectors[clip.clip_id]):
                progress.problem(f"{clip.clip_id}: skipped, shorter than {self.config.frames} frames")
                continue
            score, frames, shares = self._score_with_shares(self._residuals(vectors[clip.clip_id]))
            times = features.frame_times(len(frames)) + offset  # centre of each 5-frame window
            detections.append(
                Detection(
                    clip.clip_id,
                    score,
                    False,
                    frames.astype(np.float32),
                    times,
                    **map_fields(band_map(shares, features, times, clip.duration_s)),
                )
            )
        return detections

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for domain, (count, total, outer) in self.stats.items():
            state[f"stats.{domain}.count"] = torch.tensor([count], dtype=torch.float64)
            state[f"stats.{domain}.sum"] = total
            state[f"stats.{domain}.outer"] = outer
        for mode, (clip_scores, frame_scores) in self.held_out.items():
            state[f"held_out.{mode}.clip_scores"] = torch.from_numpy(np.asarray(clip_scores, dtype=np.float64))
            state[f"held_out.{mode}.frame_scores"] = torch.from_numpy(np.asarray(frame_scores, dtype=np.float64))
        state["input.mean"], state["input.scale"] = self.input_mean, self.input_scale
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model.to(self.device).eval()
        if "input.mean" in state:
            self.input_mean, self.input_scale = state["input.mean"], state["input.scale"]
        else:  # saved before inputs were standardised: it was trained on raw log-mel
            self.config = dataclasses.replace(self.config, standardise=False)
        for domain in self.stats:
            self.stats[domain] = [
                float(state[f"stats.{domain}.count"][0]),
                state[f"stats.{domain}.sum"],
                state[f"stats.{domain}.outer"],
            ]
        self.held_out = {
            mode: (state[f"held_out.{mode}.clip_scores"].numpy(), state[f"held_out.{mode}.frame_scores"].numpy())
            for mode in MODES
            if f"held_out.{mode}.clip_scores" in state
        }
        if not self.held_out and "train.clip_scores" in state:  # saved before held-out scores were kept
            self.held_out = {
                self.config.mode: (state["train.clip_scores"].numpy(), state["train.frame_scores"].numpy())
            }
        self._update_precisions()
