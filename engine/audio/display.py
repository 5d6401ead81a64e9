"""What the spectrogram view draws, computed without Qt: a mel spectrogram in dB and a min/max waveform envelope.

Two resolutions: `detail` reads one time window and returns every frame (hop `DisplayConfig.hop_length`);
`overview` streams a whole file block by block (memory stays a few blocks, whatever the file's length) and
returns at most `overview_columns` columns, each the mean power of `frames_per_column` frames spread across it.
Both are meant to run on a worker thread; `overview` reports progress and can be cancelled.

Conventions (the GUI places images and curves by them):

* Columns tile time exactly: column i of a tile covers [start_s + i * column_s, start_s + (i + 1) * column_s)
  and its FFT frame(s) are centred inside that span (at its middle at full resolution). So
  `setRect(start_s, mel_low, end_s - start_s, mel_high - mel_low)` lines up with the time axis. At full
  resolution `start_s` is the window's first sample and `end_s` lies less than one hop past its last.
  Frames reaching past the file's ends see zeros there.
* Rows: librosa's Slaney filter bank puts the centres of filters 0..n_mels-1 evenly in Slaney mel between
  hz_to_mel(f_min) and hz_to_mel(f_max) (n_mels + 2 points, the outer two being the first and last filters'
  feet). Row f spans from half-way to its lower neighbour's centre to half-way to its upper neighbour's
  centre, so it is centred on its own filter's peak; `mel_low`/`mel_high` are thus half a filter spacing
  inside f_min/f_max. A sine lands brightest in the row whose span holds its frequency.
* dB: each FFT bin's power is normalised so that a full-scale sine (amplitude 1) centred on a bin reads
  0 dB in that bin; each row is that power averaged over the band by the Slaney-shaped filter (librosa's
  norm='slaney' bank times the bin width sr / n_fft, so every filter's weights sum to about 1). Broadband
  noise therefore reads flat across rows, a full-scale sine reads about 0 dB where bands are as narrow as
  the FFT's main lobe and less in wide high bands (its power is spread over the band's mean): at 16 kHz with
  the defaults, -2 dB at 1 kHz, -6.5 dB at 3 kHz, -11 dB at 7 kHz; white noise of RMS L dBFS reads about
  L - 10 log10(n_fft / 6) dB (L - 22 dB for n_fft 1024) in every row. Values lie
  in [-top_db, about +6]: the power is floored at 10 ** (-top_db / 10), so silence gives -top_db, never -inf.
* Envelope: sample k sits at time k / sample_rate; a bucket's time is the mean of its samples' times.
  Channels are mixed to mono (their mean), or the clip's chosen channel is taken, as `load_audio` does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
import soundfile as sf

from engine.audio.io import AudioInfo, _libsndfile_reason, probe
from engine.errors import AudioError

if TYPE_CHECKING:
    from engine.jobs import Progress

#: Frames read from disk per block while streaming (1 MiB of float32 per channel).
_BLOCK_FRAMES = 1 << 18
#: FFT frames transformed per batch: bounds the temporary arrays (a few MiB) whatever the window's length.
_FFT_BATCH = 512

# Slaney's mel scale (librosa's htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


@dataclass(frozen=True)
class DisplayConfig:
    """How the spectrogram view is computed; sizes are in samples at the file's own rate."""

    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None: the file's Nyquist frequency (a larger value is clipped to it)
    top_db: float = 100.0  # dB values are floored at -top_db
    overview_columns: int = 3000
    frames_per_column: int = 8

    def __post_init__(self) -> None:
        if min(self.n_fft, self.hop_length, self.n_mels, self.overview_columns, self.frames_per_column) < 1:
            raise ValueError(f"sizes in {self} must be positive")
        if self.top_db <= 0 or self.f_min < 0:
            raise ValueError(f"top_db must be positive and f_min not negative in {self}")

    def top_hz(self, sample_rate: int) -> float:
        nyquist = sample_rate / 2
        return nyquist if self.f_max is None else min(float(self.f_max), nyquist)


@overload
def hz_to_mel(hz: float) -> float: ...
@overload
def hz_to_mel(hz: np.ndarray) -> np.ndarray: ...
def hz_to_mel(hz):
    """Slaney mel value of a frequency (librosa.hz_to_mel with htk=False); float in, float out."""
    f = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    mel = np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)
    return float(mel) if mel.ndim == 0 else mel


@overload
def mel_to_hz(mel: float) -> float: ...
@overload
def mel_to_hz(mel: np.ndarray) -> np.ndarray: ...
def mel_to_hz(mel):
    """Frequency of a Slaney mel value (librosa.mel_to_hz with htk=False); float in, float out."""
    m = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    hz = np.where(m >= _MIN_LOG_MEL, log_part, m * _F_SP)
    return float(hz) if hz.ndim == 0 else hz


@dataclass
class SpectrogramTile:
    """A mel spectrogram image in dB; see the module docstring for what its edges and values mean."""

    db: np.ndarray  # [n_mels, T] float32, C-contiguous; row 0 is the lowest band
    start_s: float  # left edge of the first column
    end_s: float  # right edge of the last column
    mel_low: float  # lower edge of row 0, in Slaney mel
    mel_high: float  # upper edge of the top row
    sample_rate: int

    @property
    def column_s(self) -> float:
        return (self.end_s - self.start_s) / self.db.shape[1]

    @property
    def hz_edges(self) -> np.ndarray:
        """The n_mels + 1 row edges in Hz (evenly spaced in mel), lowest first."""
        return mel_to_hz(np.linspace(self.mel_low, self.mel_high, self.db.shape[0] + 1))

    def row_of(self, hz: float) -> int | None:
        """The row whose span holds `hz`, or None outside the tile (for a cursor read-out)."""
        row = math.floor((hz_to_mel(hz) - self.mel_low) / (self.mel_high - self.mel_low) * self.db.shape[0])
        return row if 0 <= row < self.db.shape[0] else None

    def column_of(self, seconds: float) -> int | None:
        """The column whose span holds `seconds`, or None outside the tile."""
        column = math.floor((seconds - self.start_s) / self.column_s)
        return column if 0 <= column < self.db.shape[1] else None


@dataclass
class Envelope:
    """Min/max of the mono waveform per bucket; draw `low` and `high` against `times` and fill between."""

    times: np.ndarray  # [N] float64 bucket times in seconds
    low: np.ndarray  # [N] float32 smallest sample per bucket
    high: np.ndarray  # [N] float32 largest sample per bucket


def spectrogram(samples: np.ndarray, sample_rate: int, start_s: float, config: DisplayConfig) -> SpectrogramTile:
    """Full-resolution tile of mono samples already in memory, the first of them at `start_s` seconds.

    ceil(len / hop) columns; the signal is taken as zero before and after the samples given.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or len(samples) == 0:
        raise ValueError(f"expected a non-empty 1-D array of mono samples, got shape {samples.shape}")
    pad = config.n_fft // 2 + config.hop_length
    padded = np.concatenate([np.zeros(pad, np.float32), samples, np.zeros(pad, np.float32)])
    return _full_resolution(padded, pad, len(samples), sample_rate, start_s, config)


def detail(
    path: str | Path,
    start_s: float,
    end_s: float,
    config: DisplayConfig,
    buckets: int = 4000,
    channel: int | None = None,
) -> tuple[SpectrogramTile, Envelope]:
    """Full-resolution tile and envelope of [start_s, end_s] (clamped to the file), reading only that window
    and the half-frame of context either side that the FFT needs.

    The envelope has `buckets` min/max buckets, or holds the raw samples (low == high) when the window has
    at most 2 * buckets samples. Meant for windows of minutes at most: memory grows with the window.
    """
    info = probe(path)
    _check_channel(info, channel)
    first, last = _window(info, start_s, end_s)
    pad = config.n_fft // 2 + config.hop_length
    read_from, read_to = max(first - pad, 0), min(last + pad, info.frames)
    audio = _read_mono(info, read_from, read_to - read_from, channel)
    padded = np.concatenate(
        [np.zeros(pad - (first - read_from), np.float32), audio, np.zeros(pad - (read_to - last), np.float32)]
    )
    inner = padded[pad : pad + last - first]
    if not np.isfinite(inner).all():
        raise AudioError(info.path, "holds NaN or infinite samples; re-export it from the recorder's software")
    tile = _full_resolution(padded, pad, last - first, info.sample_rate, first / info.sample_rate, config)
    n = last - first
    if n <= 2 * buckets:
        times = (first + np.arange(n, dtype=np.float64)) / info.sample_rate
        return tile, Envelope(times, inner.copy(), inner.copy())
    meter = _EnvelopeMeter(first, n, buckets, info.sample_rate)
    meter.add(first, inner)
    return tile, meter.result()


def overview(
    path: str | Path,
    config: DisplayConfig,
    buckets: int = 8000,
    progress: Progress | None = None,
    channel: int | None = None,
) -> tuple[SpectrogramTile, Envelope]:
    """Whole-file tile of at most `overview_columns` columns and an envelope of `buckets` buckets.

    A file whose full resolution fits in `overview_columns` columns gets exactly `detail` of the whole file.
    Otherwise the file is streamed in blocks (memory stays a few blocks): column j spans the j-th of
    `overview_columns` equal parts of the file and holds the mean power of `frames_per_column` frames centred
    evenly across it. `progress` gets an update per block; cancelling it raises `engine.jobs.Cancelled`.
    """
    info = probe(path)
    _check_channel(info, channel)
    hop = config.hop_length
    if -(-info.frames // hop) <= config.overview_columns:
        if progress is not None:
            progress.update(0, info.frames, f"reading {info.path.name}")
        result = detail(info.path, 0.0, info.duration_s, config, buckets=buckets, channel=channel)
        if progress is not None:
            progress.update(info.frames, info.frames, f"reading {info.path.name}")
        return result
    return _stream_overview(info, config, buckets, progress, channel)


# --- full resolution -----------------------------------------------------------------------------------------


def _full_resolution(
    padded: np.ndarray, pad: int, n: int, sample_rate: int, start_s: float, config: DisplayConfig
) -> SpectrogramTile:
    """Frames centred in each hop-wide column of padded[pad:pad + n]; `pad` samples of context either side."""
    hop, n_fft = config.hop_length, config.n_fft
    columns = -(-n // hop)
    # Column i's frame is centred at sample i*hop + hop//2 of the window, so starts at pad + that - n_fft//2.
    offset = pad + hop // 2 - n_fft // 2
    needed = offset + (columns - 1) * hop + n_fft
    if needed > len(padded):  # only when a caller gave less context than spectrogram() adds
        padded = np.concatenate([padded, np.zeros(needed - len(padded), np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded[offset:needed], n_fft)[::hop]
    mel = np.empty((columns, config.n_mels), dtype=np.float32)
    basis = _mel_basis(sample_rate, config.n_fft, config.n_mels, config.f_min, config.top_hz(sample_rate))
    for at in range(0, columns, _FFT_BATCH):
        mel[at : at + _FFT_BATCH] = _power(windows[at : at + _FFT_BATCH], n_fft) @ basis
    return _tile(mel, start_s, start_s + columns * hop / sample_rate, sample_rate, config)


# --- streaming overview --------------------------------------------------------------------------------------


def _stream_overview(
    info: AudioInfo, config: DisplayConfig, buckets: int, progress: Progress | None, channel: int | None = None
) -> tuple[SpectrogramTile, Envelope]:
    n, n_fft, sr = info.frames, config.n_fft, info.sample_rate
    columns, per_column = config.overview_columns, config.frames_per_column
    total_frames = columns * per_column
    # Frame m is centred at (m + 0.5) * n / total_frames: evenly spread, per_column of them in each column.
    starts = ((np.arange(total_frames) + 0.5) * (n / total_frames)).astype(np.int64) - n_fft // 2
    basis = _mel_basis(sr, n_fft, config.n_mels, config.f_min, config.top_hz(sr))
    sums = np.zeros((columns, config.n_mels), dtype=np.float32)
    envelope = _EnvelopeMeter(0, n, buckets, sr)
    # `tail` holds the file's samples from `tail_origin` on (zeros before 0) that a pending frame still needs.
    tail = np.zeros(n_fft, np.float32)
    tail_origin = -n_fft
    next_frame = 0
    decoded = 0
    label = f"reading {info.path.name}"
    out = np.empty((_BLOCK_FRAMES, info.channels), dtype=np.float32)
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                if progress is not None:
                    progress.update(decoded, n, label)
                block = f.read(frames=min(_BLOCK_FRAMES, n - decoded), dtype="float32", always_2d=True, out=out)
                at_end = len(block) == 0 or decoded + len(block) >= n
                mono = _mono(block, channel)
                if len(mono):
                    envelope.add(decoded, mono)
                decoded += len(mono)
                buffer = np.concatenate([tail, mono, np.zeros(n_fft, np.float32)] if at_end else [tail, mono])
                ready = np.searchsorted(starts, tail_origin + len(buffer) - n_fft, side="right")
                for at in range(next_frame, ready, _FFT_BATCH):
                    batch = np.arange(at, min(at + _FFT_BATCH, ready))
                    windows = np.lib.stride_tricks.sliding_window_view(buffer, n_fft)[starts[batch] - tail_origin]
                    _add_by_column(sums, batch // per_column, _power(windows, n_fft) @ basis)
                next_frame = ready
                if at_end or next_frame == total_frames:
                    break
                keep_from = max(int(starts[next_frame]) - tail_origin, 0)
                tail = buffer[min(keep_from, len(buffer)) :].copy()
                tail_origin += min(keep_from, len(buffer))
    except sf.LibsndfileError as exc:
        raise AudioError(
            info.path,
            f"cannot be decoded after {decoded / sr:.2f} s ({_libsndfile_reason(exc)}); "
            "the file is probably truncated or damaged",
        ) from None
    if decoded < n:
        raise AudioError(info.path, f"truncated: the header promises {n} frames but only {decoded} could be decoded")
    if progress is not None:
        progress.update(n, n, label)
    sums /= per_column
    return _tile(sums, 0.0, n / sr, sr, config), envelope.result(info.path)


def _add_by_column(sums: np.ndarray, columns: np.ndarray, mel: np.ndarray) -> None:
    """sums[columns[i]] += mel[i] for non-decreasing `columns` (np.add.at is ~20x slower)."""
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(columns)) + 1])
    sums[columns[cuts]] += np.add.reduceat(mel, cuts, axis=0)


class _EnvelopeMeter:
    """Min/max per bucket over samples [first, first + n), fed in consecutive blocks."""

    def __init__(self, first: int, n: int, buckets: int, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        count = max(1, min(buckets, n))
        self.edges = first + (np.arange(count + 1, dtype=np.int64) * n) // count  # bucket b: [edges[b], edges[b+1])
        self.low = np.full(count, np.inf, dtype=np.float32)
        self.high = np.full(count, -np.inf, dtype=np.float32)

    def add(self, start: int, block: np.ndarray) -> None:
        end = start + len(block)
        b0 = int(np.searchsorted(self.edges, start, side="right")) - 1
        b1 = int(np.searchsorted(self.edges, end - 1, side="right")) - 1
        cuts = np.concatenate([[0], self.edges[b0 + 1 : b1 + 1] - start])
        span = slice(b0, b1 + 1)
        self.low[span] = np.minimum(self.low[span], np.minimum.reduceat(block, cuts))
        self.high[span] = np.maximum(self.high[span], np.maximum.reduceat(block, cuts))

    def result(self, path: Path | None = None) -> Envelope:
        # NaN survives minimum/maximum and Inf shows in them, so the reduced values tell on the whole file.
        if path is not None and not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise AudioError(path, "holds NaN or infinite samples; re-export it from the recorder's software")
        times = (self.edges[:-1] + self.edges[1:] - 1) / (2.0 * self.sample_rate)
        return Envelope(times.astype(np.float64), self.low, self.high)


# --- shared pieces -------------------------------------------------------------------------------------------


def _power(windows: np.ndarray, n_fft: int) -> np.ndarray:
    """|rfft|^2 of Hann-windowed frames [frames, n_fft] -> [frames, n_fft // 2 + 1] float32."""
    import scipy.fft  # pocketfft in float32 on both cores: ~6x numpy.fft here

    spectrum = scipy.fft.rfft(windows * _hann(n_fft), axis=1, workers=-1)
    return spectrum.real**2 + spectrum.imag**2


def _tile(mel: np.ndarray, start_s: float, end_s: float, sample_rate: int, config: DisplayConfig) -> SpectrogramTile:
    # In place on `mel` [T, n_mels] (the caller's scratch): the long-file path stays within a few blocks.
    np.maximum(mel, np.float32(10.0 ** (-config.top_db / 10.0)), out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    np.maximum(mel, np.float32(-config.top_db), out=mel)  # float32 rounding would leave -100.00001
    low, high = hz_to_mel(config.f_min), hz_to_mel(config.top_hz(sample_rate))
    half = (high - low) / (config.n_mels + 1) / 2  # half the spacing of the filters' centres
    return SpectrogramTile(
        db=np.ascontiguousarray(mel.T, dtype=np.float32),
        start_s=float(start_s),
        end_s=float(end_s),
        mel_low=low + half,
        mel_high=high - half,
        sample_rate=int(sample_rate),
    )


@lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann
    window.setflags(write=False)
    return window


@lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] float32: the Slaney bank, times the bin width (weights sum to ~1 per filter),
    times the power scale that makes a full-scale sine centred on a bin read 1 in that bin."""
    import librosa

    if f_min >= f_max:
        raise ValueError(f"f_min ({f_min} Hz) must lie below f_max ({f_max} Hz)")
    with warnings.catch_warnings():
        # Too many bands for the FFT leaves some filters empty; those rows just read -top_db.
        warnings.simplefilter("ignore", UserWarning)
        bank = librosa.filters.mel(
            sr=sample_rate,
            n_fft=n_fft,
            n_mels=n_mels,
            fmin=f_min,
            fmax=f_max,
            htk=False,
            norm="slaney",
            dtype=np.float64,
        )
    amplitude_scale = 2.0 / float(_hann(n_fft).astype(np.float64).sum())
    basis = np.ascontiguousarray((bank * (sample_rate / n_fft) * amplitude_scale**2).T, dtype=np.float32)
    basis.setflags(write=False)
    return basis


def _window(info: AudioInfo, start_s: float, end_s: float) -> tuple[int, int]:
    """[first, last) sample range of a window clamped to the file; AudioError when nothing of it is in it."""
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or end_s <= start_s:
        raise AudioError(info.path, f"invalid window: {start_s} s to {end_s} s (the end must come after the start)")
    first = max(round(start_s * info.sample_rate), 0)
    last = min(round(end_s * info.sample_rate), info.frames)
    if first >= last:
        raise AudioError(
            info.path,
            f"the window {start_s:.3f} s to {end_s:.3f} s lies outside the file (0 to {info.duration_s:.3f} s)",
        )
    return first, last


def _check_channel(info: AudioInfo, channel: int | None) -> None:
    if channel is not None and not 0 <= channel < info.channels:
        raise AudioError(info.path, f"has {info.channels} channel(s); channel {channel + 1} does not exist")


def _mono(block: np.ndarray, channel: int | None) -> np.ndarray:
    """One channel of a [frames, channels] block, or the mean of them all (`channel` None), as `load_audio`."""
    if channel is not None:
        return block[:, channel]
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def _read_mono(info: AudioInfo, first: int, count: int, channel: int | None = None) -> np.ndarray:
    try:
        with sf.SoundFile(str(info.path)) as f:
            if first:
                f.seek(first)
            data = f.read(frames=count, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(
            info.path, f"cannot be decoded ({_libsndfile_reason(exc)}); the file is probably truncated or damaged"
        ) from None
    if len(data) < count:
        raise AudioError(
            info.path,
            f"truncated: the header promises {info.frames} frames but only {first + len(data)} could be decoded",
        )
    return np.ascontiguousarray(_mono(data, channel))
