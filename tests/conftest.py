"""Shared fixtures: a small synthetic data set made by the project's own generator, and fresh projects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.data.toy import ToyConfig, generate  # noqa: E402
from engine.store import Project  # noqa: E402

#: Small enough to make in a few seconds, big enough to have every kind of clip.
SMALL_TOY = ToyConfig(scale=0.01, seed=3, duration_s=1.0, sections=2)


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path, monkeypatch):
    """Tests keep their weights settings to themselves: never the user's real config directory."""
    monkeypatch.setenv("EARMARK_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    generate(out, SMALL_TOY)
    return out


@pytest.fixture
def project(tmp_path) -> Project:
    with Project.create(tmp_path / "project") as p:
        yield p


@pytest.fixture
def toy_project(tmp_path, toy_dataset) -> Project:
    """A fresh project holding the small synthetic data set."""
    from engine.data.importers import import_source

    with Project.create(tmp_path / "toy_project") as p:
        import_source(p, toy_dataset, "metadata")
        yield p
