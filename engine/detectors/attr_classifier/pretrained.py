"""`encoder=pretrained`: the AST set up with `earmark weights add ast`, fine-tuned with the margin head in place
of the small conv encoder.

The AST reads the Kaldi filter bank (128 bins, 10 ms frames) in windows of its own length (1024 frames for
the published model), normalised as the original; a clip is cut into windows one after another
(`engine.detectors.ast_ae.model.windows_of`), each window one "segment". Its patch tokens on the 16 x 16
patch grid (12 x 101 per window for the published model) are the per-patch embeddings the map is drawn
from; their mean and max, projected, the segment embedding the head classifies, as the conv encoder's.
Columns of a window that hold only padding are left out of the map (the window's span ends at the clip's
last frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from engine.data.clip import Clip
from engine.detectors.metadata.segments import ClipSegments
from engine.errors import EarmarkError
from engine.jobs import Progress


class AstEmbedding(nn.Module):
    """An `ASTModel` with the conv encoder's interface: windows [B, W, 128 + 1] (normalised filter bank, then
    the frame-validity column) -> `feature_map` [B, H, rows, columns] -> `pool` -> [B, dim]."""

    def __init__(self, model: nn.Module, dim: int) -> None:
        super().__init__()
        config = model.config
        self.model = model
        self.rows = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        self.project = nn.Linear(2 * config.hidden_size, dim)

    def feature_map(self, windows: torch.Tensor) -> torch.Tensor:
        tokens = self.model(input_values=windows[..., :-1]).last_hidden_state[:, 2:]  # after CLS, distillation
        return tokens.unflatten(1, (self.rows, -1)).permute(0, 3, 1, 2)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        flat = fmap.flatten(2)
        return self.project(torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(windows))


def ast_encoder(info: dict, dim: int, saved: bool) -> AstEmbedding:
    """The AST encoder: from the weights set up (a fit; `info` gets their location and the architecture), or
    with `saved` from the saved model's architecture in `info` (its weights are loaded afterwards)."""
    from engine.encoders.ast import import_transformers, load_ast_model
    from engine.encoders.kaldi import N_MELS

    import_transformers()
    from transformers import ASTConfig, ASTModel

    if saved:
        return AstEmbedding(ASTModel(ASTConfig.from_dict(info["ast_config"])), dim)
    from engine import weights

    location = weights.location("ast")  # names what to do when no AST weights are set up
    model = load_ast_model(location)
    if model.config.num_mel_bins != N_MELS:
        raise EarmarkError(
            f"attr_classifier: the AST at {location} expects {model.config.num_mel_bins} mel bins; Earmark "
            f"feeds {N_MELS}. Use the published AST weights or `--set encoder=conv`"
        )
    info.update(weights=location, ast_config=model.config.to_diff_dict())
    return AstEmbedding(model, dim)


def ast_windows(clips: Sequence[Clip], window_frames: int, patch: int, progress: Progress) -> dict[str, ClipSegments]:
    """clip_id -> the clip's filter-bank windows as segments [n, W, 129], each window's span in seconds and
    the clip's frame count (10 ms frames); unreadable or too short clips are named through `progress`."""
    from engine.audio.feature_cache import load_clips
    from engine.detectors.ast_ae.model import windows_of
    from engine.encoders.kaldi import FRAME_SHIFT_S, SAMPLE_RATE, ast_fbank

    found = {}
    for index, clip in enumerate(clips):
        progress.update(index, len(clips), f"attr_classifier: filter banks {index}/{len(clips)}")
        [audio] = load_clips([clip], SAMPLE_RATE, progress)
        if audio is None:
            continue
        fbank = ast_fbank(torch.from_numpy(np.asarray(audio, dtype=np.float32)))
        if len(fbank) < patch:
            progress.problem(f"{clip.clip_id}: skipped, too short for the AST: {clip.duration_s:.2f} s")
            continue
        windows, starts = windows_of(fbank, window_frames, patch)
        spans = np.array([[s * FRAME_SHIFT_S, (s + window_frames) * FRAME_SHIFT_S] for s in starts.tolist()])
        found[clip.clip_id] = ClipSegments(windows, spans, len(fbank), FRAME_SHIFT_S)
    return found
