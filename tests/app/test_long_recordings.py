"""A long recording opens with its overview at once, and the visible window is drawn in detail as the
user zooms in; the screenshot command renders the window with a clip and its map."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PySide6.QtGui import QImage

from engine.data.importers import import_files

REPO = Path(__file__).resolve().parents[2]


def test_a_long_recording_shows_an_overview_then_detail_of_the_zoomed_window(qtbot, window, tmp_path):
    rate, minutes = 16000, 12
    path = tmp_path / "night_shift.wav"
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as out:  # written a minute at a time
        rng = np.random.default_rng(0)
        for minute in range(minutes):
            block = 0.02 * rng.standard_normal(60 * rate)
            if minute == 7:  # a knock half-way through minute 7
                block[30 * rate : 30 * rate + rate // 10] += 0.8
            out.write(block.astype(np.float32))
    report = import_files(window.project, [path])
    window.refresh()
    clip_id = report.clip_ids[0]
    with qtbot.waitSignal(window.clip_shown, timeout=10000):
        window.table.select(clip_id)
    view = window.view
    overview = view.overview
    assert overview.db.shape[1] <= 3000 and abs(overview.end_s - minutes * 60) < 1
    knock = int(7.5 * 60 / overview.column_s)
    assert overview.db[:, knock].mean() > np.median(overview.db.mean(axis=0)) + 3
    # Zoomed to ten seconds around the knock, the window is computed at full resolution.
    with qtbot.waitSignal(view.detail_shown, timeout=10000) as shown:
        view.set_visible_range(445.0, 455.0)
    start, end = shown.args
    assert start <= 445.0 and end >= 455.0 and end - start < 30
    assert abs(view.detail.column_s - view.settings.hop_length / rate) < 1e-9
    x, _ = view.wave_curve.getData()
    assert x.min() >= start - 1e-6 and x.max() <= end + 1e-6
    # Zoomed out again, the whole file's overview and waveform come back.
    view.fit()
    qtbot.waitUntil(lambda: view.detail is None, timeout=5000)
    x, _ = view.wave_curve.getData()
    assert x.min() < 10 and x.max() > minutes * 60 - 10


def test_the_screenshot_command_renders_the_window_with_a_clip_and_its_map(demo_copy, tmp_path):
    from tests.app.conftest import TINY_DEMO

    png = tmp_path / "window.png"
    toy = TINY_DEMO.toy
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.main",
            "demo",
            "--project",
            str(demo_copy),
            "--scale",
            str(toy.scale),
            "--seed",
            str(toy.seed),
            "--duration",
            str(toy.duration_s),
            "--ae-epochs",
            str(TINY_DEMO.ae_epochs),
            "--screenshot",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Saved a screenshot of the window to {png}" in result.stdout
    image = QImage(str(png))
    assert image.width() >= 1200 and image.height() >= 800
    # The spectrogram area is not blank: it holds many distinct colours (the map's warm ones among them).
    middle = image.copy(300, 100, 600, 250)
    colours = {middle.pixel(x, y) for x in range(0, 600, 3) for y in range(0, 250, 3)}
    assert len(colours) > 200
    warm = sum(1 for c in colours if ((c >> 16) & 255) > 150 and (c & 255) < 100)
    assert warm > 5


def test_opening_a_folder_that_is_not_a_project_says_so_without_opening_a_window(tmp_path):
    not_a_project = tmp_path / "empty"
    not_a_project.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "app.main", "open", str(not_a_project)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 1
    assert f"earmark: error: no project at {not_a_project}; create one with `earmark new" in result.stderr


def test_a_device_this_machine_lacks_is_refused_before_the_window_opens(tmp_path):
    # Apple's GPU never exists on Linux or Windows; on a Mac the same check refuses a missing CUDA.
    device = "cuda" if sys.platform == "darwin" else "mps"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.main",
            "demo",
            "--project",
            str(tmp_path / "demo"),
            "--device",
            device,
            "--screenshot",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 1
    assert f"earmark: error: device '{device}' was asked for but" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "demo").exists()
