"""`ast_ae`: an Audio Spectrogram Transformer auto-encoder (seed 000): a fine-tuned (or, without AST weights,
a small from-scratch) AST encodes the filter bank into patch tokens, their mean is the latent z, a decoder
rebuilds the log-mel patches; the score is S = 0.7 M(z) + 0.3 E. See README.md in this folder for the
method, its settings and its figures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.ast_ae.model import AstAutoEncoder, Forward
from engine.detectors.ast_ae.scoring import (
    ClipResult,
    LatentStats,
    clip_results,
    frame_errors,
    robust_scale,
    row_scale,
)
from engine.detectors.base import Detection, Detector, DetectorConfig, TrainingScores
from engine.detectors.held_out import held_out_folds
from engine.errors import EarmarkError
from engine.jobs import Progress

ENCODERS = ("auto", "pretrained", "scratch")
BRANCHES = ("encoder", "decoder")
#: Clips read and scored at once (a 10 s clip's windows take 0.5 MB; an hour's recording 190 MB).
SCORED_AT_ONCE = 16
#: Training-normal frame scores kept for re-learning the frame threshold.
_KEPT_FRAMES = 20000
#: Settings that change only how a trained network scores: a resumed training may differ in them.
_SCORING_ONLY = {
    "threshold_quantile",
    "frame_quantile",
    "merge_gap_s",
    "min_region_s",
    "latent_weight",
    "reconstruction_weight",
    "domain_min_clips",
}


@dataclass
class AstAEConfig(DetectorConfig):
    #: Where the encoder starts: `pretrained` (the AST weights set up with `earmark weights add ast`,
    #: fine-tuned), `scratch` (the small AST below, randomly initialised) or `auto` (pretrained when set up).
    encoder: str = "auto"
    #: The from-scratch AST: layers x hidden size, heads, window length in 10 ms frames, patch stride.
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    window_frames: int = 256
    stride: int = 16
    #: The decoder: each token is squeezed to `bottleneck` numbers before the patch is rebuilt.
    bottleneck: int = 16
    decoder_width: int = 256
    #: Weight of the latent loss (z pulled towards the batch's mean) beside the reconstruction loss.
    compactness: float = 0.1
    #: S = latent_weight * M(z) + reconstruction_weight * E.
    latent_weight: float = 0.7
    reconstruction_weight: float = 0.3
    #: A domain with fewer trained-on clips than this is whitened with both domains' latent statistics.
    domain_min_clips: int = 5
    epochs: int = 20
    #: The encoder stays frozen for this many first epochs (the decoder learns to read it first).
    warm_up_epochs: int = 0
    #: A branch (encoder or decoder) frozen for the whole run (`earmark debug freeze`).
    freeze: str = ""
    batch_size: int = 8
    #: 0: 5e-4 from scratch, 5e-5 when fine-tuning pretrained weights.
    learning_rate: float = 0.0
    seed: int = 0
    #: This share of the normal training clips (at least one) is held out of training to learn the threshold.
    held_out_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise EarmarkError(f"ast_ae: encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if self.freeze not in ("", *BRANCHES):
            raise EarmarkError(f"ast_ae: freeze must be one of {', '.join(BRANCHES)} (or empty), not {self.freeze!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.warm_up_epochs < 0 or self.learning_rate < 0:
            raise EarmarkError(
                "ast_ae: epochs >= 1, batch_size >= 2, warm_up_epochs >= 0 and learning_rate >= 0 are required"
            )
        if self.freeze == "decoder" and self.warm_up_epochs:
            raise EarmarkError(
                "ast_ae: warm_up_epochs freezes the encoder while freeze=decoder freezes the decoder: nothing "
                "would train in those epochs; use warm_up_epochs=0 with freeze=decoder"
            )
        if self.hidden_size % max(self.heads, 1) or min(self.layers, self.heads, self.bottleneck) < 1:
            raise EarmarkError(
                "ast_ae: layers, heads and bottleneck must be at least 1, and hidden_size a multiple of heads"
            )
        if self.window_frames < 16 or not 1 <= self.stride <= 16:
            raise EarmarkError("ast_ae: window_frames must be at least 16 (one patch) and stride 1 to 16")
        if not 0.0 < self.held_out_fraction < 1.0 or min(self.latent_weight, self.reconstruction_weight) < 0:
            raise EarmarkError("ast_ae: held_out_fraction must lie between 0 and 1, and the score weights be >= 0")


def fine_tunes(config: AstAEConfig) -> bool:
    """Whether a fit with `config` starts from AST weights set up by the user (else from scratch)."""
    from engine import weights

    try:
        return config.encoder == "pretrained" or (config.encoder == "auto" and "ast" in weights.configured())
    except EarmarkError:  # an unreadable weights file: fitting will say so
        return False


class AstAEDetector(Detector):
    key = "ast_ae"
    title = "AST auto-encoder"
    Config = AstAEConfig
    config: AstAEConfig
    by_default = False  # fine-tuning the published AST takes hours per group on a CPU: fitted by name only
    #: Seconds of computing per second of training audio per epoch (the fit estimate), measured with
    #: tests/bench/bench_ast_ae.py on 2 cores with other work running: the small AST about 50 ms per 2.56 s
    #: window; fine-tuning an AST of the published size (12 x 768) 9-13 s per 10.24 s window.
    fit_cost: ClassVar[float] = 0.02
    fine_tuning_cost: ClassVar[float] = 1.3

    @classmethod
    def fit_seconds(cls, config: AstAEConfig, train_s: float) -> float:
        """Expected seconds to fit one group with `config` on `train_s` seconds of training audio."""
        cost = cls.fine_tuning_cost if fine_tunes(config) else cls.fit_cost
        return cost * train_s * max(int(config.epochs), 1)

    def __init__(self, config: AstAEConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.model: AstAutoEncoder | None = None  # built on first use: loading AST weights takes a while
        self.latent = LatentStats()
        self.error_median, self.error_mad = 0.0, 1.0
        self.row_scale = np.ones(1)  # [F] the trained clips' mean error per map row
        self.held_out_scores, self.held_out_frames = np.zeros(0), np.zeros(0)
        self.held_out_ids: list[str] | None = []

    # -- the network -------------------------------------------------------------------------------------
    def network(self) -> AstAutoEncoder:
        """The auto-encoder, built on first use from the chosen encoder (see `AstAEConfig.encoder`)."""
        if self.model is None:
            self.model = self._build(self._encoder_start()).to(self.device)
        return self.model

    def branches(self) -> dict[str, torch.nn.Module]:
        model = self.network()
        return {"encoder": model.encoder, "decoder": model.decoder}

    def _encoder_start(self) -> str | None:
        """The AST weights' location to fine-tune, or None to train the small AST from scratch."""
        from engine import weights

        choice = self.config.encoder  # an unreadable weights file fails here, saying how to fix it
        if choice == "scratch" or (choice == "auto" and "ast" not in weights.configured()):
            return None
        return weights.location("ast")  # names what to do when `pretrained` is asked for without weights

    def _build(self, location: str | None, ast_config: dict | None = None) -> AstAutoEncoder:
        from engine.encoders.ast import import_transformers, load_ast_model

        import_transformers()
        from transformers import ASTConfig, ASTModel

        from engine.detectors.ast_ae.model import scratch_config
        from engine.encoders.kaldi import N_MELS

        config = self.config
        with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights, not the global state
            torch.manual_seed(config.seed)
            if ast_config is not None:  # a saved model: its own architecture, its weights loaded afterwards
                encoder = ASTModel(ASTConfig.from_dict(ast_config))
            elif location is not None:
                encoder = load_ast_model(location)
                if encoder.config.num_mel_bins != N_MELS:
                    raise EarmarkError(
                        f"ast_ae: the AST at {location} expects {encoder.config.num_mel_bins} mel "
                        f"bins; Earmark feeds {N_MELS}. Use the published AST weights or "
                        "`--set encoder=scratch`"
                    )
            else:
                encoder = ASTModel(
                    scratch_config(config.hidden_size, config.layers, config.heads, config.window_frames, config.stride)
                )
            model = AstAutoEncoder(encoder, config.bottleneck, config.decoder_width)
        if ast_config is None:  # a new network: say where it started (a loaded one's model.json says it)
            self.info.update(
                encoder="scratch" if location is None else "pretrained", ast_config=encoder.config.to_diff_dict()
            )
            self.info.pop("weights", None)
            if location is not None:
                self.info["weights"] = location
        return model

    # -- fitting ------------------------------------------------------------------------------------------
    def _windows(self, clips: Sequence[Clip], progress: Progress) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """clip_id -> (windows [n, W, 129], first frame of each); unreadable or too short clips are reported."""
        from engine.audio.feature_cache import load_clips
        from engine.detectors.ast_ae.model import windows_of
        from engine.encoders.kaldi import FRAME_LENGTH_S, FRAME_SHIFT_S, SAMPLE_RATE, ast_fbank

        model = self.network()
        found = {}
        for index, clip in enumerate(clips):
            progress.update(index, len(clips), f"ast_ae: filter banks {index}/{len(clips)}")
            [audio] = load_clips([clip], SAMPLE_RATE, progress)
            if audio is None:
                continue
            fbank = ast_fbank(torch.from_numpy(np.asarray(audio, dtype=np.float32)))
            if len(fbank) < model.patch:
                need = math.ceil(100 * ((model.patch - 1) * FRAME_SHIFT_S + FRAME_LENGTH_S)) / 100  # one patch
                progress.problem(
                    f"{clip.clip_id}: skipped, too short for ast_ae: {clip.duration_s:.2f} s, needs {need:.2f} s"
                )
                continue
            found[clip.clip_id] = windows_of(fbank, model.window_frames, model.patch)
        return found

    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        self.model = None  # a fresh network for every fit
        windows = self._windows(normals, progress.child("", span=(0.0, 0.05)))
        normals = [c for c in normals if c.clip_id in windows]
        if not normals:
            raise EarmarkError(
                "ast_ae: none of the training clips could be read or is long enough; check them with `earmark info`"
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
        self._train(trained, windows, progress.child("", span=(0.05, 0.95)))
        results = clip_results(self.network(), trained, windows, self._batch())
        self.row_scale = row_scale(list(results.values()))
        results = {clip_id: r.per_row(self.row_scale) for clip_id, r in results.items()}
        self.latent = LatentStats.of([(c.domain, results[c.clip_id].z) for c in trained])
        self.error_median, self.error_mad = robust_scale([results[c.clip_id].error for c in trained])
        scored = held or trained  # one clip: nothing to hold out, its own score must do
        held_results = results if not held else self._results(held, windows)
        self.held_out_scores = np.array([self._score(held_results[c.clip_id], c.domain) for c in scored])
        frames = np.concatenate([held_results[c.clip_id].lane for c in scored])
        if len(frames) > _KEPT_FRAMES:
            frames = frames[np.sort(np.random.default_rng(0).choice(len(frames), _KEPT_FRAMES, replace=False))]
        self.held_out_frames = frames
        self.held_out_ids = [c.clip_id for c in scored]
        self.info.update(held_out=len(held), trained_clips=len(trained))
        progress.update(1, 1, f"ast_ae: trained on {len(trained)} clips, {len(held)} held out for the threshold")
        return TrainingScores(self.held_out_scores, self.held_out_frames, list(self.held_out_ids))

    def _results(self, clips: Sequence[Clip], windows: dict) -> dict[str, ClipResult]:
        """Each clip's latents and its error map, every row in units of the trained clips' error of that row."""
        found = clip_results(self.network(), clips, windows, self._batch())
        return {clip_id: result.per_row(self.row_scale) for clip_id, result in found.items()}

    def _batch(self) -> int:
        return max(4 * self.config.batch_size, 16)

    def _signature(self, clips: Sequence[Clip]) -> str:
        """The training data and the settings that shape training: a checkpoint of others is not resumed."""
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _SCORING_ONLY}
        text = json.dumps(
            [settings, self.info.get("weights"), [(c.clip_id, c.checksum) for c in clips]], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _train(self, clips: list[Clip], windows: dict, progress: Progress) -> None:
        from engine.training import LoopConfig, Trainer

        config = self.config
        model = self.network()
        data = torch.cat([windows[c.clip_id][0] for c in clips])
        rate = config.learning_rate or (5e-5 if self.info.get("encoder") == "pretrained" else 5e-4)
        loop = LoopConfig(
            epochs=config.epochs,
            patience=config.epochs + 1,
            batch_size=config.batch_size,
            learning_rate=rate,
            seed=config.seed,
            warm_up_epochs=config.warm_up_epochs,
        )
        with tempfile.TemporaryDirectory(prefix="earmark-ast_ae-") as scratch:
            folder = Path(self.training_folder) if self.training_folder is not None else Path(scratch)
            if not self.resume and self.training_folder is not None and folder.exists():
                shutil.rmtree(folder)  # a fresh fit: nothing of an earlier one may be taken up
            trainer = Trainer(
                model,
                folder,
                loop,
                self.device,
                self._loss,
                None,
                "",
                self._signature(clips),
                label="ast_ae: ",
                branches=self.branches(),
                frozen=(config.freeze,) if config.freeze else (),
                warm_up=("encoder",) if config.warm_up_epochs else (),
                durable=self.training_folder is not None,
                min_batch=1,  # no batch norm in the AST (layer norm) or the decoder: a batch of one trains
            )
            outcome = trainer.fit(data, {}, progress, resume=self.resume)
        self.history = outcome.history
        self.info.update(
            epochs_trained=outcome.last_epoch,
            steps=outcome.steps,
            resumed_from=outcome.resumed_from,
            final_loss=outcome.history[-1]["train_loss"] if outcome.history else None,
        )
        model.eval()

    def _loss(self, out: Forward, targets: dict) -> dict[str, torch.Tensor]:
        """Reconstruction: the mean squared error over the patches that hold audio. Latent: the spread of z
        about the batch's mean (see README: what makes M(z) mean something)."""
        valid = out.valid.float()
        reconstruction = (out.patch_errors() * valid).sum() / valid.sum().clamp_min(1.0)
        z = out.z.float()
        latent = (z - z.mean(dim=0)).pow(2).mean()
        return {"latent": self.config.compactness * latent, "reconstruction": reconstruction}

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        """The clips' latents join the target statistics; the network is not retrained. Each is scored before
        it joins (as an unseen clip is), so its score joins the held-out ones."""
        windows = self._windows(clips, progress)
        clips = [c for c in clips if c.clip_id in windows]
        results = self._results(clips, windows)
        new = [self._score(results[c.clip_id], "target") for c in clips]
        for clip in clips:
            self.latent.add("target", results[clip.clip_id].z)
        earlier = (
            self.held_out_ids if self.held_out_ids is not None else self.earlier_held_out_ids(len(self.held_out_scores))
        )
        self.held_out_ids = None if earlier is None else earlier + [c.clip_id for c in clips]
        self.held_out_scores = np.concatenate([self.held_out_scores, new])
        # The frame threshold stays as fitting learnt it
        return TrainingScores(self.held_out_scores, np.zeros(0), self.held_out_ids)

    # -- scoring -------------------------------------------------------------------------------------------
    def _score(self, result: ClipResult, domain: str | None) -> float:
        """S = latent_weight * M(z) + reconstruction_weight * E: M the mean over the clip's windows of the
        whitened latent distance, E its reconstruction MSE against the training clips' median, over their MAD."""
        distance = float(self.latent.distance(result.z, domain, self.config.domain_min_clips).mean())
        error = (result.error - self.error_median) / self.error_mad
        return self.config.latent_weight * distance + self.config.reconstruction_weight * error

    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        detections = []
        for start in range(0, len(clips), SCORED_AT_ONCE):  # a few clips at a time: long recordings are large
            progress.update(start, len(clips), f"ast_ae: {len(detections)} clips scored")
            batch = clips[start : start + SCORED_AT_ONCE]
            windows = self._windows(batch, progress.child(""))
            results = self._results([c for c in batch if c.clip_id in windows], windows)
            for clip in (c for c in batch if c.clip_id in results):
                result = results[clip.clip_id]
                detections.append(
                    Detection(
                        clip.clip_id,
                        self._score(result, clip.domain),
                        False,
                        result.lane,
                        result.time_spans_s.mean(axis=1),
                        anomaly_map=result.map,
                        map_freq_spans_hz=result.freq_spans_hz,
                        map_time_spans_s=result.time_spans_s,
                    )
                )
        progress.update(len(clips), len(clips), f"ast_ae: {len(detections)} clips scored")
        return detections

    def frame_reconstruction_errors(
        self,
        clips: Sequence[Clip],
        progress: Progress | None = None,
    ) -> dict[str, np.ndarray]:
        """Per readable clip, the raw mean squared reconstruction error of each 10 ms frame that a patch covers
        (for `earmark debug recon`)."""
        self._require_fitted()
        progress = progress or Progress()
        errors = {}
        for index, clip in enumerate(clips):
            progress.update(index, len(clips), f"ast_ae: reconstruction errors of {clip.clip_id}")
            for clip_id, found in self._windows([clip], progress.child("")).items():
                errors[clip_id] = frame_errors(self.network(), *found, self._batch())
        progress.update(len(clips), len(clips), f"ast_ae: {len(errors)} clips")
        return errors

    # -- state ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"model.{k}": v for k, v in self.network().state_dict().items()}
        state.update(self.latent.state())
        state["error.scale"] = torch.tensor([self.error_median, self.error_mad], dtype=torch.float64)
        state["error.rows"] = torch.from_numpy(np.asarray(self.row_scale, dtype=np.float64))
        state["held_out.clip_scores"] = torch.from_numpy(np.asarray(self.held_out_scores, dtype=np.float64))
        state["held_out.frame_scores"] = torch.from_numpy(np.asarray(self.held_out_frames, dtype=np.float64))
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "ast_config" not in self.info:
            raise KeyError("ast_config")
        self.model = self._build(None, self.info["ast_config"]).to(self.device)
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        self.model.eval()
        self.latent = LatentStats.from_state(state)
        self.error_median, self.error_mad = (float(v) for v in state["error.scale"])
        self.row_scale = state["error.rows"].numpy()
        self.held_out_scores = state["held_out.clip_scores"].numpy()
        self.held_out_frames = state["held_out.frame_scores"].numpy()
        self.held_out_ids = None  # known again from the held-out scores saved with the model
