"""The spectrogram view's data: mel tiles and waveform envelopes, at full resolution and as a streamed overview."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from engine.audio import load_audio
from engine.audio.display import DisplayConfig, detail, hz_to_mel, mel_to_hz, overview, spectrogram
from engine.errors import AudioError
from engine.jobs import Cancelled, RecordingProgress
from tests.helpers import tone, write_wav

SR = 16000
CONFIG = DisplayConfig()
#: Few columns, so that a file of seconds already takes the streamed overview path.
SMALL_OVERVIEW = DisplayConfig(overview_columns=40)
LONG_S = 20 * 60
BURST = (600.1, 600.15)  # seconds: well inside column 1500 of 3000 (each 0.4 s wide)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """20 minutes of quiet noise with one loud 50 ms burst, written in blocks as a recorder would."""
    path = tmp_path_factory.mktemp("display") / "long.wav"
    rng = np.random.default_rng(7)
    burst = slice(int(BURST[0] * SR), int(BURST[1] * SR))
    block = 1 << 20
    with sf.SoundFile(str(path), "w", SR, 1, "PCM_16") as f:
        for start in range(0, LONG_S * SR, block):
            x = 0.01 * rng.standard_normal(min(block, LONG_S * SR - start), dtype=np.float32)
            lo, hi = max(burst.start - start, 0), min(burst.stop - start, len(x))
            if lo < hi:
                t = (start + np.arange(lo, hi)) / SR
                x[lo:hi] = 0.8 * np.sin(2 * np.pi * 2000 * t)
            f.write(x)
    return path


def brightest_row(db: np.ndarray) -> int:
    return int(np.argmax(db[:, 3:-3].mean(axis=1)))  # edge columns see the zeros beyond the file


def test_the_mel_scale_is_librosas_slaney_scale():
    import librosa

    hz = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 22050.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz, htk=False), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    assert isinstance(hz_to_mel(1000.0), float) and hz_to_mel(1000.0) == pytest.approx(15.0)


@pytest.mark.parametrize("freq", [1000.0, 3000.0, 5000.0])  # 5 kHz: rows centred on their filters
def test_a_sine_is_brightest_in_the_row_whose_span_holds_its_frequency(tmp_path, freq):
    path = write_wav(tmp_path / "sine.wav", tone(5.0, freq=freq, amplitude=1.0), subtype="FLOAT")

    for tile, _ in (detail(path, 0.0, 5.0, CONFIG), overview(path, SMALL_OVERVIEW)):
        row = brightest_row(tile.db)
        edges = tile.hz_edges
        assert edges[row] <= freq < edges[row + 1]
        assert tile.row_of(freq) == row
        # A full-scale sine never reads above 0 dB (the GUI's colour range is [-top_db, 0]); it reads less in
        # wide high bands, which average its power over more FFT bins.
        assert (-4.0 if freq < 1500 else -12.0) < tile.db[row, 3:-3].mean() <= 0.5
    assert tile.db.shape == (128, 40)  # the second tile came from the streamed path


def test_a_short_burst_in_a_long_file_shows_in_the_overview_and_its_envelope(long_file):
    tile, envelope = overview(long_file, CONFIG)

    assert tile.db.shape == (CONFIG.n_mels, CONFIG.overview_columns)
    assert tile.start_s == 0.0 and tile.end_s == pytest.approx(LONG_S, abs=tile.column_s)
    power = (10.0 ** (tile.db / 10.0)).sum(axis=0)
    assert int(np.argmax(power)) == tile.column_of(sum(BURST) / 2) == 1500
    assert 10 * np.log10(power[1500] / np.median(power)) > 20
    assert len(envelope.times) == 8000 and np.all(np.diff(envelope.times) > 0)
    loudest = int(np.argmax(envelope.high))
    assert envelope.high[loudest] == pytest.approx(0.8, abs=0.01)
    assert BURST[0] - LONG_S / 8000 <= envelope.times[loudest] <= BURST[1] + LONG_S / 8000
    assert envelope.low.min() == pytest.approx(-0.8, abs=0.01)
    assert np.all(envelope.low <= envelope.high)


def test_the_overview_streams_the_file_in_bounded_memory(long_file):
    detail(long_file, 0.0, 1.0, CONFIG)  # imports and the cached filter bank, not what we measure
    tracemalloc.start()
    try:
        overview(long_file, CONFIG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    whole_file = LONG_S * SR * 4  # the file as float32
    assert peak < 0.25 * whole_file, f"peak {peak / 2**20:.1f} MiB"


def test_the_overview_reports_progress_and_can_be_cancelled(long_file):
    progress = RecordingProgress()
    overview(long_file, CONFIG, progress=progress)
    assert len(progress.updates) > 10
    assert progress.updates[-1][:2] == (LONG_S * SR, LONG_S * SR)

    with pytest.raises(Cancelled):
        overview(long_file, CONFIG, progress=RecordingProgress(cancel_after=3))


def test_detail_is_the_window_asked_for_at_full_resolution(tmp_path):
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(30 * SR) + tone(30.0, freq=700, amplitude=0.3)).astype(np.float32)
    path = write_wav(tmp_path / "clip.wav", x, subtype="FLOAT")
    hop_s = CONFIG.hop_length / SR

    tile, envelope = detail(path, 7.3, 9.1, CONFIG)

    assert abs(tile.start_s - 7.3) < hop_s and 0 <= tile.end_s - 9.1 < hop_s
    assert tile.db.shape[1] == int(np.ceil(1.8 * SR / CONFIG.hop_length)) and tile.db.flags.c_contiguous
    samples, _ = load_audio(path, start_s=7.3, duration_s=1.8)
    alone = spectrogram(samples, SR, 7.3, CONFIG)
    assert (alone.start_s, alone.end_s, alone.db.shape) == (tile.start_s, tile.end_s, tile.db.shape)
    # detail reads the audio either side of the window; spectrogram() of the bare samples sees zeros there.
    np.testing.assert_allclose(tile.db[:, 3:-3], alone.db[:, 3:-3], atol=1e-3)
    assert len(envelope.times) == 4000
    assert envelope.high.max() == samples.max() and envelope.low.min() == samples.min()
    assert 7.3 <= envelope.times[0] < envelope.times[-1] < 9.1

    end_tile, _ = detail(path, 29.0, 45.0, CONFIG)  # clamped to the file's end
    assert 0 <= end_tile.end_s - 30.0 < hop_s
    _, short = detail(path, 10.0, 10.1, CONFIG)  # a short window gives the samples themselves
    np.testing.assert_array_equal(short.low, x[10 * SR : int(10.1 * SR)])
    np.testing.assert_array_equal(short.low, short.high)
    with pytest.raises(AudioError, match="outside the file"):
        detail(path, 31.0, 32.0, CONFIG)


def test_overview_of_a_short_file_is_detail_of_the_whole_file(tmp_path):
    path = write_wav(tmp_path / "short.wav", tone(10.0, freq=440) + tone(10.0, freq=2500, amplitude=0.1))

    tile, envelope = overview(path, CONFIG, buckets=4000)
    whole, whole_envelope = detail(path, 0.0, 10.0, CONFIG)

    np.testing.assert_array_equal(tile.db, whole.db)
    assert (tile.start_s, tile.end_s, tile.mel_low, tile.mel_high) == (
        whole.start_s,
        whole.end_s,
        whole.mel_low,
        whole.mel_high,
    )
    np.testing.assert_array_equal(envelope.high, whole_envelope.high)
    np.testing.assert_array_equal(envelope.times, whole_envelope.times)


def test_stereo_is_mixed_down_to_mono(tmp_path):
    left, right = tone(6.0, freq=1000, amplitude=0.5), tone(6.0, freq=3000, amplitude=0.5)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    mono = (left + right) / 2

    tile, envelope = detail(path, 0.0, 6.0, CONFIG)
    np.testing.assert_allclose(tile.db, spectrogram(mono, SR, 0.0, CONFIG).db, atol=1e-3)
    assert envelope.high.max() == pytest.approx(mono.max(), abs=1e-6)
    streamed, streamed_envelope = overview(path, SMALL_OVERVIEW)
    profile = streamed.db.mean(axis=1)
    for freq in (1000, 3000):  # both channels show
        assert profile[streamed.row_of(freq)] > profile.max() - 6
    assert streamed_envelope.high.max() == pytest.approx(mono.max(), abs=1e-6)


def test_unreadable_files_raise_audio_errors(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")

    for path in (corrupt, empty, tmp_path / "missing.wav"):
        with pytest.raises(AudioError):
            overview(path, CONFIG)
        with pytest.raises(AudioError):
            detail(path, 0.0, 1.0, CONFIG)


def test_silence_gives_the_floor_not_minus_infinity(tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros(5 * SR, dtype=np.float32))

    for tile, envelope in (detail(path, 0.0, 5.0, CONFIG), overview(path, SMALL_OVERVIEW)):
        assert np.isfinite(tile.db).all() and np.all(tile.db == -CONFIG.top_db)
        assert np.all(envelope.low == 0) and np.all(envelope.high == 0)
