"""What AST and BEATs encoders share: frozen transformers over a Kaldi filter bank, run in windows.

A clip longer than one window (10.24 s) is cut into consecutive windows; each window's patch columns are
placed at their own time, so the patch grid of a long recording is the windows' grids side by side. The
selected layers' patch tokens form the grid; the clip vector is their mean (mean pooling), and each frame
vector is the mean of one patch column over frequency.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

from engine.audio.feature_cache import FeatureCache, load_clips
from engine.data.clip import Clip
from engine.device import autocast
from engine.encoders import kaldi
from engine.encoders.base import Embedding, Encoder
from engine.errors import EarmarkError
from engine.jobs import Progress

#: Windows run through the model at once.
BATCH = 4


class PatchTransformerEncoder(Encoder):
    """Subclasses load the model and say how to make features, run windows and place patches."""

    #: Frames per window, frames from one window's start to the next, and the fewest frames worth a window.
    window_frames = 1024
    window_hop = 1024
    min_window_frames = 1
    #: The layers used when none are chosen (1-based; -1 is the last).
    default_layers: tuple[int, ...] = (-1,)

    def __init__(self, cache: FeatureCache, layers: Sequence[int] = (), location: str | None = None) -> None:
        """Loads the weights at `location` (default: the ones set up with `earmark weights add <name>`) and
        settles the layers: without a choice, the defaults (given for 12 layers) scaled to the model's depth;
        a layer the model does not have fails here, before any audio is read."""
        from engine import weights

        super().__init__(cache)
        self.location = location or weights.location(self.name)
        self.model = _shared_model(type(self).load_model, self.location, str(cache.device))
        depth = self.depth()
        self.layers = tuple(layers) or tuple(
            sorted({max(1, round(layer * depth / 12)) for layer in self.default_layers})
        )
        self.layer_indices = layer_indices(self.layers, depth, f"this {self.name} model")

    @property
    def sample_rate(self) -> int:
        return kaldi.SAMPLE_RATE

    # -- for subclasses ------------------------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def load_model(location: str) -> torch.nn.Module:
        """The model in eval mode, or an `EarmarkError` that says where to get the right weights."""

    @abstractmethod
    def depth(self) -> int:
        """How many transformer layers the loaded model has."""

    @abstractmethod
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """[T, 128] model-ready features of one waveform, before any padding."""

    @abstractmethod
    def window_input(self, frames: torch.Tensor) -> torch.Tensor:
        """One window's features [<= window_frames, 128] made into the model's input [W, 128]."""

    @abstractmethod
    def run(self, windows: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens [B, F, Tp, D] of the layers in `layer_indices` for a batch of windows [B, W, 128]."""

    @abstractmethod
    def columns(self, valid_frames: int) -> int:
        """How many patch columns of a window hold audio, for `valid_frames` real frames."""

    @abstractmethod
    def row_spans_hz(self, rows: int) -> np.ndarray: ...

    @abstractmethod
    def column_spans_s(self, columns: int, offset_frames: int) -> np.ndarray: ...

    # -- the shared work ------------------------------------------------------------------------------------
    def encode(
        self,
        clips: Sequence[Clip],
        progress: Progress | None = None,
        *,
        patches: bool = False,
    ) -> dict[str, Embedding]:
        progress = progress or Progress()
        result: dict[str, Embedding] = {}
        for index, clip in enumerate(clips):
            progress.update(index, len(clips), f"{self.name}: {clip.clip_id}")
            [audio] = load_clips([clip], self.sample_rate, progress)
            if audio is not None:
                [result[clip.clip_id]] = self.embed_waveforms([audio], patches=patches)
        progress.update(len(clips), len(clips), f"{self.name}: {len(result)} clips embedded")
        return result

    def embed_waveforms(self, waveforms: Sequence[np.ndarray], *, patches: bool = False) -> list[Embedding]:
        return [self._embed(np.asarray(audio, dtype=np.float32), patches) for audio in waveforms]

    def _embed(self, audio: np.ndarray, patches: bool) -> Embedding:
        frames = self.features(torch.from_numpy(audio))
        starts = [
            s
            for s in range(0, max(1, len(frames)), self.window_hop)
            if s == 0 or len(frames) - s >= self.min_window_frames
        ]
        windows = [self.window_input(frames[s : s + self.window_frames]) for s in starts]
        outputs: list[torch.Tensor] = []  # per window: [L, F, Tp, D]
        with torch.inference_mode():
            first = 0
            while first < len(windows):  # consecutive windows of one shape run as a batch
                last = first + 1
                while last < min(len(windows), first + BATCH) and windows[last].shape == windows[first].shape:
                    last += 1
                batch = torch.stack(windows[first:last]).to(self.cache.device)
                with autocast(self.cache.device):
                    layers = self.run(batch)
                outputs += list(torch.stack([layer.float().cpu() for layer in layers], dim=1))
                first = last
        grid_parts, spans = [], []
        for start, output in zip(starts, outputs, strict=True):
            keep = self.columns(min(self.window_frames, len(frames) - start))
            grid_parts.append(output[:, :, :keep])
            spans.append(self.column_spans_s(keep, start))
        grid = torch.cat(grid_parts, dim=2).numpy()  # [L, F, Tp, D]
        time_spans = np.concatenate(spans)
        embedding = Embedding(
            clip=grid.mean(axis=(0, 1, 2)),
            frames=np.ascontiguousarray(grid.mean(axis=(0, 1))),
            frame_times=time_spans.mean(axis=1),
        )
        if patches:
            embedding.patches = grid
            embedding.freq_spans_hz = self.row_spans_hz(grid.shape[1])
            embedding.time_spans_s = time_spans
        return embedding


@lru_cache(maxsize=2)
def _shared_model(load: Callable[[str], torch.nn.Module], location: str, device: str) -> torch.nn.Module:
    """One loaded model per kind, location and device, shared by every encoder (none of them trains it)."""
    return load(location).to(device)


def layer_indices(layers: Sequence[int], depth: int, model: str) -> list[int]:
    """0-based indices of the chosen layers (1-based, negative from the end) of a `depth`-layer model; a
    clear error for a layer it does not have."""
    indices = []
    for layer in layers:
        index = layer - 1 if layer > 0 else depth + layer
        if layer == 0 or not 0 <= index < depth:
            raise EarmarkError(f"{model} has layers 1 to {depth} (or -1 for the last), not {layer}")
        indices.append(index)
    return indices
