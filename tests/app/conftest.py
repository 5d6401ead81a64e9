"""Fixtures for the window: a small demo project built by the demo's own code, copied per test, and the
main window on it (offscreen, no audio device), checked at teardown for a still-running engine thread."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from engine.data.toy import ToyConfig
from engine.demo import DemoPlan, build_demo
from engine.jobs import Progress
from tests.helpers import write_hum

#: The demo at a size a test can build in seconds: two machines, one section, 2 s clips.
TINY_DEMO = DemoPlan(ToyConfig(scale=0.012, seed=5, duration_s=2.0, sections=1, machines=("fan", "valve")), ae_epochs=2)


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "demo"
    build_demo(folder, TINY_DEMO, torch.device("cpu"), Progress())
    return folder


@pytest.fixture
def demo_copy(built_demo, tmp_path) -> Path:
    """A private copy of the demo project (its audio stays where it is: clips refer to it)."""
    target = tmp_path / "demo"
    shutil.copytree(built_demo, target, ignore=shutil.ignore_patterns("audio"))
    return target


@pytest.fixture
def project_folder(demo_copy) -> Path:
    """The project the `window` fixture opens; a test module overrides it to open another."""
    return demo_copy


@pytest.fixture
def window(qtbot, project_folder):
    from app.main_window import MainWindow

    win = MainWindow(use_audio=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.job_ended, timeout=10000):
        assert win.open_project(project_folder)
    yield win
    win.shutdown()
    assert win.engine.isFinished(), "the engine thread is still running after the window was shut down"


def write_tone(path: Path, seconds: float = 10.0, rate: int = 16000, seed: int = 0, burst: bool = False) -> Path:
    """A machine-like recording (`tests.helpers.write_hum`) of 10 s; with `burst`, loud noise in its middle fifth."""
    return write_hum(path, seconds, rate, seed, burst, burst_span=(0.4, 0.6))
