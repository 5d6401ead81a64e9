"""Features for many clips at once: loaded from the project's cache, or decoded and computed in batches.

The cache lives in `artifacts/features/<config key>/<checksum[:2]>/<checksum>.npy` (float16: half the disk,
and far finer than the dB resolution anybody listens to). A clip that cannot be read is reported through
`progress.problem` and left out of the result, so one corrupt file never stops a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from engine.audio.io import load_audio
from engine.data.clip import Clip
from engine.device import pick_device
from engine.errors import AudioError
from engine.files import save_npy_atomic
from engine.jobs import Progress

BATCH = 32


class FeatureSpec(Protocol):
    """What the cache needs to know of a feature: its name, its audio rate, and how to compute a batch."""

    @property
    def key(self) -> str: ...

    sample_rate: int

    def compute(self, waveforms: torch.Tensor) -> torch.Tensor: ...


class FeatureCache:
    """Per-project feature cache; `folder=None` computes every time (nothing is written)."""

    def __init__(self, folder: str | Path | None, device: torch.device | None = None, loaders: int = 4) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.device = device or pick_device()
        self._loaders = loaders

    def path(self, spec: FeatureSpec, checksum: str, channel: int | None = None) -> Path | None:
        """Where a file's features live; one channel of a file is cached apart from its mono mix."""
        if self.folder is None or not checksum:
            return None
        name = checksum if channel is None else f"{checksum}-ch{channel}"
        return self.folder / spec.key / checksum[:2] / f"{name}.npy"

    def drop(self, checksum: str) -> int:
        """Delete every cached feature of the file with `checksum` (all configs and channels): used when a
        file changed on disk, so nothing computed from its old content is kept. Returns how many went."""
        if self.folder is None or not checksum or not self.folder.is_dir():
            return 0
        dropped = 0
        for config in self.folder.iterdir():
            for cached in (config / checksum[:2]).glob(f"{checksum}*.npy"):
                cached.unlink(missing_ok=True)
                dropped += 1
        return dropped

    def features(
        self,
        clips: Sequence[Clip],
        spec: FeatureSpec,
        progress: Progress | None = None,
    ) -> dict[str, np.ndarray]:
        """clip_id -> float32 feature array, for every clip that could be read (the rest are reported)."""
        progress = progress or Progress()
        found: dict[str, np.ndarray] = {}
        missing: list[Clip] = []
        for clip in clips:
            cached = self.path(spec, clip.checksum, clip.channel)
            if cached is not None and cached.is_file():
                try:
                    found[clip.clip_id] = np.load(cached).astype(np.float32)
                    continue
                except (OSError, ValueError, EOFError):  # a damaged cache file is simply computed again
                    pass
            missing.append(clip)
        total, done = len(clips), len(found)
        progress.update(done, total, f"{spec.key}: {done} cached")
        with ThreadPoolExecutor(self._loaders) as pool:
            for start in range(0, len(missing), BATCH):
                batch = missing[start : start + BATCH]
                loaded = load_clips(batch, spec.sample_rate, progress, pool)
                good = _long_enough(
                    spec,
                    [(clip, audio) for clip, audio in zip(batch, loaded, strict=True) if audio is not None],
                    progress,
                )
                for clip, array in self._compute(good, spec):
                    found[clip.clip_id] = array
                    self._store(spec, clip, array)
                done += len(batch)
                progress.update(done, total, f"{spec.key}: computed {done - (total - len(missing))}")
        return found

    def _compute(self, batch: list[tuple[Clip, np.ndarray]], spec: FeatureSpec):
        by_length: dict[int, list[tuple[Clip, np.ndarray]]] = {}
        for clip, audio in batch:  # clips of one length are stacked and computed in one call
            by_length.setdefault(len(audio), []).append((clip, audio))
        for group in by_length.values():
            stacked = torch.from_numpy(np.stack([audio for _, audio in group])).to(self.device)
            with torch.inference_mode():
                result = spec.compute(stacked).float().cpu().numpy()
            for (clip, _), array in zip(group, result, strict=True):
                # Rounded to the cache's float16 either way, so a clip scores the same cached or not.
                yield clip, array.astype(np.float16).astype(np.float32)

    def _store(self, spec: FeatureSpec, clip: Clip, array: np.ndarray) -> None:
        target = self.path(spec, clip.checksum, clip.channel)
        if target is None:
            return
        # exact: the array is already float16-valued; atomic: a reader never sees half a file, a full disk
        # leaves no partial one; not fsynced: a cache file damaged by a power cut is computed again
        save_npy_atomic(target, array.astype(np.float16), durable=False)


def _long_enough(
    spec: FeatureSpec,
    loaded: list[tuple[Clip, np.ndarray]],
    progress: Progress,
) -> list[tuple[Clip, np.ndarray]]:
    """Audio too short for the spectrogram's padding would fail the whole batch; it is named and left out.
    (Detectors skip such clips before they get here, with their own minimum; this guards every other caller.)"""
    need = getattr(spec, "min_samples", None)
    if need is None:
        return loaded
    fewest = need()
    kept = []
    for clip, audio in loaded:
        if len(audio) < fewest:
            rate = spec.sample_rate
            progress.problem(
                f"{clip.clip_id}: skipped, too short for a spectrogram: {len(audio) / rate:.3f} s, "
                f"needs {fewest / rate:.3f} s"
            )
        else:
            kept.append((clip, audio))
    return kept


def load_clips(
    clips: Sequence[Clip], sample_rate: int, progress: Progress, pool: ThreadPoolExecutor | None = None
) -> list[np.ndarray | None]:
    """Each clip's samples at `sample_rate`, or None for a clip that cannot be read (reported through
    `progress.problem`). With a thread pool, files are decoded in parallel."""

    def load(clip: Clip) -> np.ndarray | AudioError:
        try:
            return load_audio(clip.path, sample_rate, channel=clip.channel)[0]
        except AudioError as exc:
            return exc

    loaded = list(pool.map(load, clips) if pool is not None else map(load, clips))
    for clip, audio in zip(clips, loaded, strict=True):
        if isinstance(audio, AudioError):
            progress.problem(f"{clip.clip_id}: skipped, {audio.reason}")
    return [None if isinstance(audio, AudioError) else audio for audio in loaded]
