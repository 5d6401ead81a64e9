"""The one way Earmark reads audio: validate, load a window, mix down or pick a channel, resample, measure.

Everything goes through libsndfile (the `soundfile` package): WAV (8/16/24/32-bit integer and 32/64-bit
float), FLAC, OGG/Vorbis and MP3. Any problem with a file raises `AudioError` naming the file and the reason,
so an importer can report it and carry on with the rest of a batch.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioError

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3"})

#: A sample at or above this magnitude counts as clipped.
CLIP_LEVEL = 0.999
#: A 20 ms frame whose RMS is below this level counts as silent.
SILENCE_DBFS = -60.0
SILENCE_FRAME_S = 0.02
_BLOCK_FRAMES = 1 << 16

#: The most samples (frames x channels) a byte of a compressed file can plausibly hold. Digital silence stays
#: under about 30 per byte in MP3, 400 in Ogg (Opus, stereo) and 600 in FLAC; a header claiming far more lies
#: (a 1.7 kB MP3 claiming 10^12 frames would otherwise be decoded for days).
MAX_SAMPLES_PER_BYTE = {"MP3": 1000, "MPEG": 1000, "OGG": 5000, "FLAC": 20000}
#: Any other format or encoding: as generous as for MP3.
OTHER_MAX_SAMPLES_PER_BYTE = 1000
#: Uncompressed encodings need at least this many bytes per sample.
MIN_BYTES_PER_SAMPLE = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}
#: A whole-file decode may take `DECODE_BASE_S` plus the lesser of 1 / `MIN_DECODE_SPEED` of the audio's
#: duration and the file's size at `MIN_DECODE_BYTES_PER_S` before it is abandoned: any machine decodes far
#: faster, so only a file that misleads the decoder reaches the limit (the size bounds a lying header).
DECODE_BASE_S = 30.0
MIN_DECODE_SPEED = 5.0
MIN_DECODE_BYTES_PER_S = 100_000


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says, checked against the file's size."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def format_name(self) -> str:
        return f"{self.format}/{self.subtype}"


@dataclass(frozen=True)
class QA:
    """Quality figures of a clip: RMS level in dBFS, peak magnitude (0..1), clipped and silent fractions."""

    rms: float
    peak: float
    clipping_ratio: float
    silence_ratio: float


def probe(path: str | Path) -> AudioInfo:
    """Read and check a file's header without decoding it; raise `AudioError` when it is unusable."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(
            path, f"not a readable audio file ({_libsndfile_reason(exc)}); Earmark reads WAV, FLAC, OGG and MP3"
        ) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "has no samples (zero length)")
    if info.format in ("WAV", "WAVEX"):
        _check_wav_not_truncated(path, size)
    _check_plausible(path, size, int(info.frames), int(info.channels), str(info.format), str(info.subtype))
    return AudioInfo(
        path=path,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def decode_time_limit(info: AudioInfo) -> float:
    """Seconds a whole-file decode of `info` may take before it is abandoned."""
    try:
        size = info.path.stat().st_size
    except OSError:
        size = 0
    return DECODE_BASE_S + min(info.duration_s / MIN_DECODE_SPEED, size / MIN_DECODE_BYTES_PER_S)


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    *,
    channel: int | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Load a clip, or a time window of it, as float32 mono samples.

    `channel=None` mixes all channels down to mono; an integer picks that channel (0-based). Only the
    requested window is read from disk. With `sample_rate`, the samples are resampled to that rate.
    Returns `(samples, rate)`.
    """
    info = probe(path)
    if channel is not None and not 0 <= channel < info.channels:
        raise AudioError(info.path, f"has {info.channels} channel(s); channel {channel + 1} does not exist")
    if start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise AudioError(info.path, f"invalid window: start {start_s} s, duration {duration_s} s")
    first = int(round(start_s * info.sample_rate))
    if first >= info.frames:
        raise AudioError(info.path, f"window starts at {start_s:.3f} s, after the end ({info.duration_s:.3f} s)")
    count = (
        info.frames - first
        if duration_s is None
        else min(int(round(duration_s * info.sample_rate)), info.frames - first)
    )
    data = _read_frames(info, first, count)
    if data.shape[0] < count:
        raise AudioError(
            info.path,
            f"truncated: the header promises {info.frames} frames but only {first + data.shape[0]} could be decoded",
        )
    samples = data.mean(axis=1) if channel is None else data[:, channel]
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    _check_finite(info.path, samples)
    if sample_rate is not None and sample_rate != info.sample_rate:
        return resample(samples, info.sample_rate, sample_rate), int(sample_rate)
    return samples, info.sample_rate


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality band-limited resampling (libsoxr, 'HQ')."""
    import soxr

    if rate_in == rate_out:
        return np.asarray(samples, dtype=np.float32)
    return np.asarray(
        soxr.resample(np.asarray(samples, dtype=np.float32), rate_in, rate_out, quality="HQ"), dtype=np.float32
    )


def scan(path: str | Path, time_limit_s: float | None = None) -> tuple[AudioInfo, QA]:
    """Decode a whole file block by block (constant memory), checking every sample, and measure its QA.

    Raises `AudioError` for a file that is missing, empty, not audio, truncated, holds NaN/Inf samples, or
    takes longer than `time_limit_s` to decode (default: `decode_time_limit`); the decode is abandoned
    between blocks, so a file that misleads the decoder costs at most the limit.
    """
    info = probe(path)
    meter = _QAMeter(info.sample_rate)
    decoded = 0
    limit = decode_time_limit(info) if time_limit_s is None else time_limit_s
    deadline = time.monotonic() + limit
    try:
        with sf.SoundFile(str(info.path)) as f:
            for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not meter.add(block):
                    _check_finite(info.path, block)  # raises, naming the problem
                decoded += block.shape[0]
                if time.monotonic() > deadline:
                    raise AudioError(
                        info.path,
                        f"decoding took longer than {limit:.0f} s (stopped after "
                        f"{decoded / info.sample_rate:.1f} s of audio)",
                    )
    except sf.LibsndfileError as exc:
        where = f" after {decoded / info.sample_rate:.2f} s" if decoded else ""
        raise AudioError(
            info.path,
            f"cannot be decoded{where} ({_libsndfile_reason(exc)}); the file is probably truncated or damaged",
        ) from None
    if decoded < info.frames:
        raise AudioError(
            info.path, f"truncated: the header promises {info.frames} frames but only {decoded} could be decoded"
        )
    return info, meter.result()


def measure_qa(samples: np.ndarray, sample_rate: int) -> QA:
    """QA figures of samples already in memory ([n] or [n, channels]); the same measure as `scan`."""
    meter = _QAMeter(sample_rate)
    block = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)
    if not meter.add(block):
        raise ValueError("samples hold NaN or infinite values")
    return meter.result()


def file_checksum(path: str | Path) -> str:
    """SHA-256 of the file's bytes: how a project recognises a clip it already holds."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _QAMeter:
    """Accumulates QA figures over blocks; silence is judged on the mono mix in 20 ms frames."""

    def __init__(self, sample_rate: int) -> None:
        self.frame = max(1, int(round(SILENCE_FRAME_S * sample_rate)))
        self.sum_squares = 0.0
        self.samples = 0
        self.peak = 0.0
        self.clipped = 0
        self.frames = 0
        self.silent_frames = 0
        self._carry = np.zeros(0, dtype=np.float32)
        self._silence_power = 10.0 ** (SILENCE_DBFS / 10.0)

    def add(self, block: np.ndarray) -> bool:
        """Take a [frames, channels] float32 block; False if it holds NaN or infinite samples."""
        if block.size == 0:
            return True
        flat = block.reshape(-1)
        magnitude = np.abs(flat)
        peak = float(magnitude.max())
        if not math.isfinite(peak):  # NaN and Inf both surface in the maximum
            return False
        self.peak = max(self.peak, peak)
        self.clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
        self.sum_squares += float(np.dot(flat, flat))  # float32 BLAS: ample precision for a level in dB
        self.samples += flat.size
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
        if len(self._carry):
            mono = np.concatenate([self._carry, mono])
        whole = len(mono) // self.frame * self.frame
        if whole:
            frames = mono[:whole].reshape(-1, self.frame)
            power = np.einsum("ij,ij->i", frames, frames) / self.frame
            self.frames += len(power)
            self.silent_frames += int(np.count_nonzero(power < self._silence_power))
        self._carry = mono[whole:]
        return True

    def result(self) -> QA:
        if len(self._carry):
            self.frames += 1
            if float(np.square(self._carry, dtype=np.float64).mean()) < self._silence_power:
                self.silent_frames += 1
            self._carry = np.zeros(0, dtype=np.float32)
        mean_square = self.sum_squares / max(self.samples, 1)
        rms_dbfs = 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf
        return QA(
            rms=max(rms_dbfs, -200.0),
            peak=self.peak,
            clipping_ratio=self.clipped / max(self.samples, 1),
            silence_ratio=self.silent_frames / max(self.frames, 1),
        )


def _read_frames(info: AudioInfo, first: int, count: int) -> np.ndarray:
    try:
        with sf.SoundFile(str(info.path)) as f:
            if first:
                f.seek(first)
            return f.read(frames=count, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(
            info.path, f"cannot be decoded ({_libsndfile_reason(exc)}); the file is probably truncated or damaged"
        ) from None


def _check_plausible(path: Path, size: int, frames: int, channels: int, fmt: str, subtype: str) -> None:
    """A header whose frame count the file's size cannot hold lies; decoding it could run for days."""
    samples = frames * channels
    if fmt not in MAX_SAMPLES_PER_BYTE and subtype in MIN_BYTES_PER_SAMPLE:
        plausible = samples * MIN_BYTES_PER_SAMPLE[subtype] <= size
    else:
        plausible = samples <= MAX_SAMPLES_PER_BYTE.get(fmt, OTHER_MAX_SAMPLES_PER_BYTE) * size
    if not plausible:
        raise AudioError(
            path,
            f"header claims {frames:.3g} frames x {channels} channel(s) in "
            f"{_size_text(size)}, far more than the file can hold; its header is wrong",
        )


def _size_text(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def _check_finite(path: Path, samples: np.ndarray) -> None:
    if not np.isfinite(samples).all():
        raise AudioError(path, "holds NaN or infinite samples; re-export it from the recorder's software")


def _check_wav_not_truncated(path: Path, size: int) -> None:
    """libsndfile quietly shortens a WAV whose data chunk is cut off; we call that truncated."""
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF":
            return  # RF64 and other variants carry 64-bit sizes elsewhere; libsndfile checks those.
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                available = size - position - 8
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise AudioError(
                        path, f"truncated: the data chunk promises {chunk_size} bytes but the file holds {available}"
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)


def _libsndfile_reason(exc: BaseException) -> str:
    text = str(exc)
    if ":" in text:
        text = text.rsplit(":", 1)[-1]
    return text.strip().rstrip(".") or "unknown error"
