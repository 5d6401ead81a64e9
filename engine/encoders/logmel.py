"""The `logmel` encoder: needs no weights, so it is the default everywhere.

- clip vector: per mel band, the mean, the standard deviation and the 95th percentile over time of the
  log-mel spectrogram (3 x n_mels values): steady machine tone, its variability, and short loud events;
- frame vectors: each log-mel frame, bands averaged in pairs (n_mels / 2 values);
- patch grid: 16 x 16 (bands x frames) patches at stride 10 in both axes, the grid AST uses, flattened
  (one layer: the spectrogram itself). Patch values are mel *amplitudes* (10^(dB/20)), not dB: patches
  are compared by cosine similarity, and on dB values every patch points the same way (the level offset
  dominates); on the synthetic set the patch memory's official score was 0.54 on dB and 0.73 on amplitudes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.audio.features import LogMelConfig
from engine.data.clip import Clip
from engine.encoders.base import Embedding, Encoder, register_encoder
from engine.jobs import Progress

PATCH = 16
STRIDE = 10


@register_encoder
class LogMelEncoder(Encoder):
    name = "logmel"
    config = LogMelConfig()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def encode(
        self,
        clips: Sequence[Clip],
        progress: Progress | None = None,
        *,
        patches: bool = False,
    ) -> dict[str, Embedding]:
        features = self.cache.features(clips, self.config, progress)
        return {clip_id: self.embed_features(mel, patches=patches) for clip_id, mel in features.items()}

    def embed_waveforms(self, waveforms: Sequence[np.ndarray], *, patches: bool = False) -> list[Embedding]:
        result = []
        for audio in waveforms:
            tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self.cache.device)
            with torch.inference_mode():
                mel = self.config.compute(tensor)[0].float().cpu().numpy()
            result.append(self.embed_features(mel, patches=patches))
        return result

    def embed_features(self, mel: np.ndarray, *, patches: bool = False) -> Embedding:
        """Embeddings from one clip's log-mel spectrogram [n_mels, T] in dB."""
        rank = int(0.95 * (mel.shape[1] - 1))  # the 95th percentile, nearest rank (a partition, not a sort)
        clip = np.concatenate([mel.mean(axis=1), mel.std(axis=1), np.partition(mel, rank, axis=1)[:, rank]])
        frames = mel.reshape(mel.shape[0] // 2, 2, -1).mean(axis=1).T
        embedding = Embedding(
            clip=clip.astype(np.float32),
            frames=np.ascontiguousarray(frames, dtype=np.float32),
            frame_times=self.config.frame_times(mel.shape[1]),
        )
        if patches:
            self._add_patches(embedding, mel)
        return embedding

    def _add_patches(self, embedding: Embedding, mel: np.ndarray) -> None:
        n_mels, n_frames = mel.shape
        padded = mel if n_frames >= PATCH else np.pad(mel, ((0, 0), (0, PATCH - n_frames)), mode="edge")
        grid = torch.from_numpy(np.power(10.0, np.ascontiguousarray(padded, dtype=np.float32) / 20.0))[None, None]
        unfolded = torch.nn.functional.unfold(grid, kernel_size=PATCH, stride=STRIDE)[0]  # [256, F * T]
        rows = (n_mels - PATCH) // STRIDE + 1
        cols = (padded.shape[1] - PATCH) // STRIDE + 1
        embedding.patches = unfolded.T.reshape(1, rows, cols, PATCH * PATCH).numpy()
        edges = self.config.band_edges_hz()
        first_band = np.arange(rows) * STRIDE
        embedding.freq_spans_hz = np.stack([edges[first_band], edges[first_band + PATCH]], axis=1)
        hop_s = self.config.hop_length / self.config.sample_rate
        first_frame = np.arange(cols) * STRIDE
        embedding.time_spans_s = np.stack([first_frame * hop_s, (first_frame + PATCH) * hop_s], axis=1)
