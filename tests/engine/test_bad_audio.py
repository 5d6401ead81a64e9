"""Bad audio never stalls a batch: a file whose header lies is named and skipped, a clip too short for a
detector is skipped with the reason while its group is scored, QA flags are reported, `--channel` picks a
channel. Commands that could hang run in a subprocess with a time limit."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.io import decode_time_limit, load_audio, probe, scan
from engine.data.importers import import_files
from engine.data.qa_flags import qa_flags
from engine.detectors.min_duration import min_duration_s
from engine.detectors.registry import detector_class
from engine.errors import AudioError
from engine.jobs import Progress
from engine.store import Project, results
from tests.helpers import tone, write_wav

REPO = Path(__file__).resolve().parents[2]
#: Generous: the batch below takes seconds; without the checks the lying MP3 decodes for days.
HANG_LIMIT_S = 120


def earmark(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=HANG_LIMIT_S,
    )


def lying_mp3(path: Path) -> Path:
    """A 1.7 kB MPEG-1 layer III file (four empty frames) whose Xing header claims 4.29e9 MP3 frames:
    libsndfile believes it and reads it as 4.9e12 samples of silence."""

    def frame(payload: bytes = b"") -> bytes:
        return bytes([0xFF, 0xFB, 0x90, 0xC4]) + payload.ljust(413, b"\x00")  # 128 kb/s, 44.1 kHz, mono

    xing = b"\x00" * 17 + b"Xing" + struct.pack(">II", 1, 0xFFFFFFF0)  # after the side info; flag 1: frames
    path.write_bytes(frame(xing) + frame() * 3)
    return path


def lying_wav(path: Path) -> Path:
    """A WAV whose data chunk claims 4 GB over 200 bytes of samples."""
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    data = bytes(200)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0xFFFFFFF0) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def noise(seconds: float, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (int(seconds * 16000),) if channels == 1 else (int(seconds * 16000), channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def recordings(folder: Path, extra: dict[str, str]) -> Path:
    """Four training normals and three test clips of one pump, plus `extra` files (name -> split,label)."""
    rows = ["relative_path,machine_type,section_id,split,label"]
    for i in range(4):
        write_wav(folder / f"train_{i}.wav", noise(1.0, i))
        rows.append(f"train_{i}.wav,pump,00,train,normal")
    for i in range(3):
        write_wav(folder / f"test_{i}.wav", noise(1.0, 10 + i))
        rows.append(f"test_{i}.wav,pump,00,test,normal")
    rows += [f"{name},pump,00,{fields}" for name, fields in extra.items()]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_the_header_lying_mp3_is_named_and_skipped_while_the_rest_imports_and_scores(tmp_path):
    assert "MP3" in sf.available_formats()  # the lying file is an MP3 only where libsndfile reads MP3
    folder = recordings(tmp_path / "recordings", {"liar.mp3": "test,normal", "liar.wav": "test,normal"})
    lying_mp3(folder / "liar.mp3")
    lying_wav(folder / "liar.wav")
    project = tmp_path / "plant"

    assert earmark("new", project).returncode == 0
    imported = earmark("import", project, folder)
    fitted = earmark("fit", project, "--detector", "knn")
    scored = earmark("score", project, "--detector", "knn")

    assert imported.returncode == 0, imported.stderr
    assert "Imported 7 clip(s)" in imported.stdout and "2 problem(s)" in imported.stdout
    mp3_line = next(line for line in imported.stderr.splitlines() if "liar.mp3" in line)
    assert "skipped" in mp3_line and "header claims 4.95e+12 frames" in mp3_line and "1.7 kB" in mp3_line
    assert "liar.wav" in imported.stderr and "truncated" in imported.stderr
    assert fitted.returncode == 0, fitted.stderr
    assert scored.returncode == 0 and "Scored 3 clip(s)" in scored.stdout


def test_probing_the_lying_mp3_refuses_it_at_once(tmp_path):
    with pytest.raises(AudioError, match=r"header claims 4\.95e\+12 frames x 1 channel\(s\) in 1\.7 kB"):
        probe(lying_mp3(tmp_path / "liar.mp3"))


def test_a_decode_running_past_its_time_limit_is_abandoned_and_named(tmp_path):
    path = write_wav(tmp_path / "long.wav", noise(10.0, 1))
    assert decode_time_limit(probe(path)) >= 30  # an honest file gets far more time than it needs

    with pytest.raises(AudioError, match="decoding took longer than 0 s"):
        scan(path, time_limit_s=0.0)
    info, _ = scan(path)
    assert info.frames == 160000


def test_a_clip_too_short_for_a_detector_is_skipped_with_the_reason_and_its_group_is_scored(tmp_path):
    folder = recordings(tmp_path / "recordings", {"blip.wav": "test,anomaly", "tick.wav": "train,normal"})
    write_wav(folder / "blip.wav", noise(0.01, 99))
    write_wav(folder / "tick.wav", noise(0.01, 98))
    project = tmp_path / "plant"

    earmark("new", project)
    imported = earmark("import", project, folder)
    fitted = earmark("fit", project, "--detector", "dcase_ae", "--set", "epochs=1")
    scored = earmark("score", project, "--detector", "dcase_ae")

    assert "Imported 9 clip(s)" in imported.stdout and "QA too short: 2 clip(s): blip.wav, tick.wav" in imported.stderr
    assert fitted.returncode == 0, fitted.stderr
    assert "tick: skipped, too short for dcase_ae: 0.01 s, needs 0.13 s" in fitted.stderr
    assert "4 training clip(s)" in fitted.stdout
    assert scored.returncode == 0, scored.stderr
    assert "blip: skipped, too short for dcase_ae: 0.01 s, needs 0.13 s" in scored.stderr
    assert "Scored 3 clip(s) with dcase_ae in 1 group(s)" in scored.stdout
    with Project.open(project) as opened:
        assert len(results.models(opened, "dcase_ae")) == 1  # the group was fitted despite the short clip
        assert sorted(results.clip_scores(opened)) == ["test_0", "test_1", "test_2"]


def test_every_detector_states_the_shortest_clip_it_can_read():
    for key in ("dcase_ae", "knn", "patch_memory"):
        detector = detector_class(key)()
        need = min_duration_s(detector)
        assert 0.0 < need < 0.25, key  # shorter than the QA flag's "too short", so a flagged clip is the cause
    assert min_duration_s(detector_class("dcase_ae")()) > min_duration_s(detector_class("knn")())


def test_qa_flags_name_short_silent_and_clipped_recordings(tmp_path, project):
    write_wav(tmp_path / "ok.wav", noise(1.0, 1))
    write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32))
    write_wav(tmp_path / "loud.wav", np.clip(tone(1.0, amplitude=2.0), -1, 1))

    report = import_files(project, sorted(tmp_path.glob("*.wav")))

    assert report.flagged == {"silent": ["quiet.wav"], "clipped": ["loud.wav"]}
    ok = next(c for c in project.clips() if c.clip_id == "ok")
    assert qa_flags(ok.duration_s, ok.qa) == []


def test_import_with_a_channel_reads_that_channel_and_the_clip_remembers_it(tmp_path):
    stereo = np.stack([noise(1.0, 1), np.zeros(16000, np.float32)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), stereo, 16000, subtype="FLOAT")
    mono_project, channel_project = tmp_path / "mix", tmp_path / "right"

    earmark("new", mono_project)
    earmark("new", channel_project)
    mixed = earmark("import", mono_project, path)
    picked = earmark("import", channel_project, path, "--channel", "2")
    wrong = earmark("import", channel_project, tmp_path / "none.wav", "--channel", "0")

    assert mixed.returncode == 0 and picked.returncode == 0, picked.stderr
    assert wrong.returncode == 2 and "1 is the first channel" in wrong.stderr
    with Project.open(mono_project) as project:
        [mix] = project.clips()
    with Project.open(channel_project) as project:
        [right] = project.clips()
    assert mix.channel is None and mix.channel_caption == "mono mix of 2 channels"
    assert right.channel == 1 and right.channel_caption == "channel 2 of 2"
    # Features are computed from the channel chosen: the right channel here is silence.
    from engine.audio.feature_cache import load_clips

    [audio_right, audio_mix] = load_clips([right, mix], 16000, Progress())
    assert np.abs(audio_right).max() == 0.0
    np.testing.assert_allclose(audio_mix, load_audio(path)[0])


def test_a_channel_the_file_does_not_have_is_named(tmp_path, project):
    path = write_wav(tmp_path / "stereo.wav", noise(0.5, 1, channels=2))
    report = import_files(project, [path], channel=2)
    assert report.added == 0
    assert "has 2 channel(s); channel 3 does not exist" in str(report.problems[0])


def test_a_mono_file_ignores_the_channel_asked_for(tmp_path, project):
    path = write_wav(tmp_path / "mono.wav", noise(0.5, 1))
    import_files(project, [path], channel=1)
    [clip] = project.clips()
    assert clip.channel is None and clip.channel_caption == ""


def test_the_spectrogram_and_envelope_show_the_chosen_channel(tmp_path):
    from engine.audio.display import DisplayConfig, detail, overview

    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([noise(1.0, 1), np.zeros(16000, np.float32)], axis=1), 16000, subtype="FLOAT")
    config = DisplayConfig()

    _, mixed = detail(path, 0.0, 1.0, config)
    _, right = detail(path, 0.0, 1.0, config, channel=1)
    _, right_overview = overview(path, DisplayConfig(overview_columns=10), channel=1)  # streamed in blocks
    _, mixed_overview = overview(path, DisplayConfig(overview_columns=10))

    assert np.abs(mixed.high).max() > 0.1 and np.abs(mixed_overview.high).max() > 0.1
    assert np.abs(right.high).max() == 0.0 and np.abs(right_overview.high).max() == 0.0
    with pytest.raises(AudioError, match="channel 3 does not exist"):
        detail(path, 0.0, 1.0, config, channel=2)


def test_features_of_a_batch_holding_a_clip_too_short_for_them_are_computed_for_the_rest(tmp_path, project):
    from engine.audio.feature_cache import FeatureCache
    from engine.audio.features import LogMelConfig

    write_wav(tmp_path / "long.wav", noise(1.0, 1))
    write_wav(tmp_path / "blip.wav", noise(0.01, 2))
    import_files(project, [tmp_path / "long.wav", tmp_path / "blip.wav"])
    progress = Progress()

    found = FeatureCache(project.artifacts / "features").features(project.clips(), LogMelConfig(), progress)

    assert list(found) == ["long"]
    assert progress.problems == ["blip: skipped, too short for a spectrogram: 0.010 s, needs 0.032 s"]


@pytest.mark.parametrize(
    "fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III"), ("WAV", "IMA_ADPCM")]
)
def test_a_minute_of_digital_silence_compresses_well_and_is_still_believed(tmp_path, fmt, subtype):
    path = tmp_path / f"silence.{fmt.lower()}"
    sf.write(str(path), np.zeros((8000 * 60, 2), np.float32), 8000, format=fmt, subtype=subtype)
    info, qa = scan(path)
    assert info.duration_s >= 59.9 and qa.silence_ratio == 1.0
