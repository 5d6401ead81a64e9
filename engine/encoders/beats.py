"""The `beats` encoder: a frozen BEATs model (Chen et al., ICML 2023) loaded from an official checkpoint.

Input as the official `preprocess`: the waveform times 2^15, a Kaldi filter bank (128 mel bins, 25 ms
Povey windows every 10 ms), normalised with mean 15.41663 and twice the standard deviation 6.55582. The
16 x 16 patches without overlap make an 8 x T/16 grid (frequency x time); the chosen layers' tokens on
that grid are the patch vectors. The architecture lives in `beats_model.py`; weights come from the file
set up with `earmark weights add beats PATH`.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.encoders import kaldi
from engine.encoders.base import register_encoder
from engine.encoders.pretrained import PatchTransformerEncoder

PATCH = 16
ROWS = kaldi.N_MELS // PATCH


@register_encoder
class BeatsEncoder(PatchTransformerEncoder):
    name = "beats"
    default_layers = (4, 8, 12)

    min_window_frames = PATCH

    @staticmethod
    def load_model(location: str) -> torch.nn.Module:
        from engine.encoders.beats_model import load_beats_checkpoint

        return load_beats_checkpoint(location)[0]

    def depth(self) -> int:
        return len(self.model.encoder.layers)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        from engine.encoders.beats_model import fbank

        if len(audio) < 400:  # the filter bank needs one whole 25 ms window
            audio = torch.nn.functional.pad(audio, (0, 400 - len(audio)))
        return fbank(audio[None])[0]

    def window_input(self, frames: torch.Tensor) -> torch.Tensor:
        if len(frames) >= PATCH:  # BEATs takes any length; the last frames short of a patch are dropped
            return frames[: len(frames) // PATCH * PATCH]
        return torch.nn.functional.pad(frames, (0, 0, 0, PATCH - len(frames)))

    def run(self, windows: torch.Tensor) -> list[torch.Tensor]:
        from engine.encoders.beats_model import tokens_to_grid

        hidden = self.model.layer_outputs(windows)
        return [tokens_to_grid(hidden[i], ROWS) for i in self.layer_indices]  # tokens run time-major: t * 8 + f

    def columns(self, valid_frames: int) -> int:
        return max(1, valid_frames // PATCH)

    def row_spans_hz(self, rows: int) -> np.ndarray:
        return kaldi.row_spans_hz(rows, PATCH, PATCH)

    def column_spans_s(self, columns: int, offset_frames: int) -> np.ndarray:
        return kaldi.column_spans_s(columns, PATCH, PATCH, offset_frames)
