"""The line above the spectrogram says what audio is shown: its sample rate and its channels, and for a file
of several channels which one is used (the mono mix unless the import picked one)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from app.clip_data import audio_caption, clip_display
from engine.data.clip import Clip
from engine.data.importers import import_files
from engine.store import Project


def test_a_stereo_recording_is_shown_as_the_mono_mix_of_its_two_channels(tmp_path):
    stereo = tmp_path / "pump_two_mics.wav"
    rng = np.random.default_rng(0)
    sf.write(stereo, 0.1 * rng.standard_normal((24000, 2)).astype(np.float32), 48000)
    with Project.create(tmp_path / "p") as project:
        import_files(project, [stereo])
        (clip,) = project.clips()
        caption = clip_display(project, clip.clip_id).caption
    assert caption.startswith("pump_two_mics.wav") and caption.endswith("0.5 s, 48000 Hz, mono mix of 2 channels)")


def test_the_caption_names_the_channel_used_counting_from_one():
    assert audio_caption(Clip("c", "c.wav", 48000, 1.0, channels=4, channel=1)) == "48000 Hz, channel 2 of 4"
    assert audio_caption(Clip("c", "c.wav", 16000, 1.0)) == "16000 Hz, mono"
