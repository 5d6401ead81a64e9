"""The `ast` encoder: a frozen Audio Spectrogram Transformer (Gong et al., Interspeech 2021) through
transformers' `ASTModel`.

Input exactly as the original: the waveform's mean removed, a Kaldi filter bank (128 mel bins, 25 ms Hann
windows every 10 ms, HTK-compatible, no dither), padded or cut to the model's 1024 frames, then normalised
with the AudioSet mean -4.2677393 and twice the standard deviation 4.5689974. The 16 x 16 patches at
stride 10 make a 12 x 101 grid (frequency x time) per window; the chosen layers' tokens on that grid are
the patch vectors. Weights come from a local folder in the transformers format or from the Hugging Face
cache, offline unless the user allows downloads (see `engine.weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache
from engine.encoders import kaldi
from engine.encoders.base import register_encoder
from engine.encoders.pretrained import PatchTransformerEncoder
from engine.errors import EarmarkError

MEAN = -4.2677393
STD = 4.5689974
#: transformers' AST module, there once `import_transformers` has run.
AST_MODULE = "transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer"


def import_transformers() -> None:
    """Import transformers' AST with the garbage collector paused; every first import of it goes through here
    (the AST encoder, ast_ae, and the window's engine thread before its first job).

    What was seen: the window crashed with a segmentation fault when the GUI thread garbage-collected while
    the engine thread ran this first import (faulthandler: the GUI thread "Garbage-collecting", the engine
    thread inside a generator expression of transformers' import code; 1 run in 5 of the Fit all test without
    the pause). That matches a known CPython 3.11 bug class (python/cpython#101975: a collection reading
    another thread's running generator frame), which other code could also trip: a Fit all without ast_ae has
    since crashed once in a collection on the engine thread itself, inside a dict comprehension of the training
    loop. This pause covers only the import, which makes some hundred thousand objects and so makes a
    collection likely; `gc.disable()` is process-wide: a stop-gap, not a fix."""
    import gc
    import sys

    if AST_MODULE in sys.modules:
        return
    paused = gc.isenabled()
    gc.disable()
    try:
        from transformers import ASTConfig, ASTModel  # noqa: F401
    finally:
        if paused:
            gc.enable()


def load_ast_model(location: str, allow_download: bool | None = None):
    """An `ASTModel` (in eval mode) from a transformers-format folder or a Hugging Face model id; a clear
    error when it is missing or is not an AST."""
    from pathlib import Path

    import_transformers()
    from transformers import ASTConfig, ASTModel
    from transformers.utils import logging as transformers_logging

    from engine import weights

    transformers_logging.disable_progress_bar()  # Earmark reports its own progress

    where = weights.KINDS["ast"].where
    if allow_download is None:
        allow_download = weights.allow_download()
    path = Path(location).expanduser()
    looks_like_path = path.is_absolute() or location.startswith((".", "~")) or path.exists()
    if looks_like_path and not path.exists():
        raise EarmarkError(f"AST weights not found at {path}; {where}")
    if path.is_file() or (path.is_dir() and not (path / "config.json").is_file()):
        raise EarmarkError(
            f"{path} is not an AST model folder in the transformers format (it needs config.json "
            f"and model.safetensors); {where}"
        )
    try:
        config = ASTConfig.from_pretrained(location, local_files_only=not allow_download)
        if config.model_type != ASTConfig.model_type:
            raise ValueError(f"it holds a {config.model_type!r} model, not an AST")
        model = ASTModel.from_pretrained(location, config=config, local_files_only=not allow_download)
    except Exception as exc:  # noqa: BLE001  (a damaged file fails in many ways: each is the user's to fix)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        offline = "" if allow_download or looks_like_path else " (downloads are off; it must be in the cache)"
        raise EarmarkError(f"cannot load AST weights from {location}{offline}: {reason}; {where}") from None
    return model.eval()


@register_encoder
class AstEncoder(PatchTransformerEncoder):
    name = "ast"
    default_layers = (4, 8, 12)

    def __init__(self, cache: FeatureCache, layers: Sequence[int] = (), location: str | None = None) -> None:
        from engine import weights

        super().__init__(cache, layers, location)
        config = self.model.config
        self.window_frames = config.max_length
        self.patch, self.f_stride, self.t_stride = config.patch_size, config.frequency_stride, config.time_stride
        if config.num_mel_bins != kaldi.N_MELS:
            raise EarmarkError(
                f"this AST expects {config.num_mel_bins} mel bins; Earmark feeds the original "
                f"{kaldi.N_MELS}. {weights.KINDS['ast'].where}"
            )
        self.rows = (config.num_mel_bins - self.patch) // self.f_stride + 1
        self.cols = (config.max_length - self.patch) // self.t_stride + 1
        self.window_hop = self.cols * self.t_stride  # the next window's first column follows on the grid
        self.min_window_frames = self.patch

    load_model = staticmethod(load_ast_model)

    def depth(self) -> int:
        return self.model.config.num_hidden_layers

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        return kaldi.ast_fbank(audio)

    def window_input(self, frames: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(frames, (0, 0, 0, self.window_frames - len(frames)))
        return (padded - MEAN) / (2 * STD)  # padded with zeros first, as the original and transformers do

    def run(self, windows: torch.Tensor) -> list[torch.Tensor]:
        output = self.model(input_values=windows, output_hidden_states=True)
        hidden = output.hidden_states[1:]  # [0] is the embedding layer
        # Tokens 0 and 1 are the CLS and distillation tokens; the rest run frequency-major over the grid.
        return [hidden[i][:, 2:].reshape(len(windows), self.rows, self.cols, -1) for i in self.layer_indices]

    def columns(self, valid_frames: int) -> int:
        return int(np.clip((valid_frames - self.patch) // self.t_stride + 1, 1, self.cols))

    def row_spans_hz(self, rows: int) -> np.ndarray:
        return kaldi.row_spans_hz(rows, self.patch, self.f_stride)

    def column_spans_s(self, columns: int, offset_frames: int) -> np.ndarray:
        return kaldi.column_spans_s(columns, self.patch, self.t_stride, offset_frames)
