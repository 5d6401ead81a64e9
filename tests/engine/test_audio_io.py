"""The audio loader: every format and subtype a user brings, windows, channels, resampling, QA, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.audio import load_audio, measure_qa, probe, scan
from engine.errors import AudioError
from tests.helpers import tone, write_wav

LOSSLESS = [
    ("WAV", "PCM_U8", 1 / 64),
    ("WAV", "PCM_16", 1e-3),
    ("WAV", "PCM_24", 1e-5),
    ("WAV", "PCM_32", 1e-6),
    ("WAV", "FLOAT", 1e-7),
    ("WAV", "DOUBLE", 1e-7),
    ("FLAC", "PCM_16", 1e-3),
    ("FLAC", "PCM_24", 1e-5),
]


@pytest.mark.parametrize(("fmt", "subtype", "tolerance"), LOSSLESS)
def test_lossless_files_load_as_the_samples_written(tmp_path, fmt, subtype, tolerance):
    original = tone(0.5, sr=22050, freq=330)
    path = write_wav(tmp_path / f"clip.{fmt.lower()}", original, sr=22050, subtype=subtype, fmt=fmt)

    samples, rate = load_audio(path)

    assert rate == 22050 and samples.dtype == np.float32 and samples.shape == original.shape
    assert np.max(np.abs(samples - original)) <= tolerance
    assert probe(path).format_name == f"{fmt}/{subtype}"


@pytest.mark.parametrize(("fmt", "subtype"), [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_files_keep_level_and_pitch(tmp_path, fmt, subtype):
    original = tone(1.0, sr=16000, freq=1000, amplitude=0.5)
    path = write_wav(tmp_path / f"clip.{fmt.lower()}", original, sr=16000, subtype=subtype, fmt=fmt)

    samples, rate = load_audio(path)

    assert rate == 16000
    assert abs(len(samples) - len(original)) < 0.1 * 16000
    assert abs(np.sqrt(np.mean(samples**2)) - 0.5 / np.sqrt(2)) < 0.05
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 16000 / len(samples) - 1000) < 5


def test_stereo_mixes_down_or_picks_a_channel(tmp_path):
    stereo = tone(0.5, channels=2)  # channel 1 is twice as loud as channel 0
    path = write_wav(tmp_path / "stereo.wav", stereo, subtype="FLOAT")

    mono, _ = load_audio(path)
    left, _ = load_audio(path, channel=0)
    right, _ = load_audio(path, channel=1)

    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(left, stereo[:, 0], atol=1e-7)
    np.testing.assert_allclose(right, stereo[:, 1], atol=1e-7)
    with pytest.raises(AudioError, match=r"has 2 channel\(s\); channel 3 does not exist"):
        load_audio(path, channel=2)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_a_time_window_is_exactly_that_part_of_the_file(tmp_path, fmt):
    rng = np.random.default_rng(0)
    noise = (rng.uniform(-0.5, 0.5, 48000)).astype(np.float32)
    path = write_wav(tmp_path / f"long.{fmt.lower()}", noise, sr=16000, subtype="PCM_24", fmt=fmt)
    full, _ = load_audio(path)

    window, rate = load_audio(path, start_s=1.25, duration_s=0.5)

    np.testing.assert_array_equal(window, full[20000:28000])
    tail, _ = load_audio(path, start_s=2.5, duration_s=10.0)  # past the end: what there is
    assert len(tail) == 8000
    with pytest.raises(AudioError, match="after the end"):
        load_audio(path, start_s=3.5)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    path = write_wav(tmp_path / "cd.wav", tone(1.0, sr=44100, freq=1000), sr=44100)

    samples, rate = load_audio(path, sample_rate=16000)

    assert rate == 16000 and len(samples) == 16000
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins over one second
    # a band-limited resampler leaves no energy to speak of away from the tone
    assert spectrum[3000:].max() < 1e-3 * spectrum.max()


def test_qa_figures(tmp_path):
    sr = 16000
    half_silent = np.concatenate([tone(1.0, sr=sr, amplitude=1.0), np.zeros(sr, np.float32)])
    path = write_wav(tmp_path / "qa.wav", half_silent, sr=sr, subtype="FLOAT")

    info, qa = scan(path)

    assert info.duration_s == pytest.approx(2.0)
    assert qa.peak == pytest.approx(1.0, abs=1e-3)
    assert qa.rms == pytest.approx(-3.01 - 3.01, abs=0.05)  # a full-scale sine for half of the time
    assert qa.silence_ratio == pytest.approx(0.5, abs=0.02)
    assert 0 < qa.clipping_ratio < 0.05  # only the sine's crests reach full scale
    clipped = measure_qa(np.clip(3 * tone(1.0, sr=sr), -1, 1), sr)
    assert clipped.clipping_ratio > 0.5


def _truncated(path, keep: float):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


def _folder(path):
    path.mkdir()
    return path


BAD_FILES = {
    "missing": (lambda d: d / "nope.wav", "file not found"),
    "empty": (lambda d: _file(d / "empty.wav", b""), "empty"),
    "text named .wav": (lambda d: _file(d / "notes.wav", b"not audio"), "not a readable audio file"),
    "truncated wav": (lambda d: _truncated(write_wav(d / "cut.wav", tone(1.0)), 0.5), "truncated"),
    "truncated flac": (
        lambda d: _truncated(
            write_wav(
                d / "cut.flac", np.random.default_rng(1).uniform(-0.5, 0.5, 32000).astype(np.float32), fmt="FLAC"
            ),
            0.5,
        ),
        "truncated",
    ),
    "NaN samples": (
        lambda d: write_wav(d / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), subtype="FLOAT"),
        "NaN",
    ),
    "Inf samples": (
        lambda d: write_wav(d / "inf.wav", np.array([0.1, np.inf, 0.2] * 100, np.float32), subtype="FLOAT"),
        "infinite",
    ),
    "zero length": (lambda d: write_wav(d / "zero.wav", np.zeros(0, np.float32)), "zero length"),
    "a folder": (lambda d: _folder(d / "dir.wav"), "folder"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_raises_one_error_naming_file_and_reason(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)

    with pytest.raises(AudioError) as caught:
        scan(path)
    assert caught.value.path == path and reason in caught.value.reason and str(path) in str(caught.value)
    with pytest.raises(AudioError, match=reason):
        load_audio(path)


def test_wav_with_trailing_chunks_is_not_called_truncated(tmp_path):
    path = write_wav(tmp_path / "tagged.wav", tone(0.25))
    with sf.SoundFile(str(path), "r+") as f:  # libsndfile writes a LIST chunk after the data for tags
        f.title = "pump 3, morning shift"
    info, _ = scan(path)
    assert info.frames == 4000
