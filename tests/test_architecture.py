"""The engine stays headless and layered: import-linter's contracts (pyproject.toml) hold, and they do catch a
breach: Qt in the engine, or the detector registry's old import cycle (the contract reaching up to the
registry, a detector reaching up into the classifiers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def copy_of_the_code(root: Path) -> Path:
    shutil.copytree(REPO / "engine", root / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_engine_imports_no_qt_app_sits_above_engine_and_the_engine_keeps_its_layers():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_the_contract_catches_qt_in_the_engine(tmp_path):
    copy_of_the_code(tmp_path)
    (tmp_path / "engine" / "sneaky.py").write_text("from PySide6.QtCore import QObject\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "engine.sneaky -> PySide6" in result.stdout


def test_the_layers_catch_the_old_registry_cycle(tmp_path):
    """The contract (base) loading a model through the registry, as `Detector.load` once did, and a detector
    reaching up into the classifiers' training code, as the leak detector once did: both are named."""
    copy_of_the_code(tmp_path)
    base = tmp_path / "engine" / "detectors" / "base.py"
    base.write_text(
        base.read_text() + "\n\ndef load(key):\n    from engine.detectors.registry import detector_class\n"
        "\n    return detector_class(key)\n"
    )
    leak = tmp_path / "engine" / "detectors" / "leak" / "detector.py"
    leak.write_text(leak.read_text() + "\nfrom engine.classifiers.leak_data import labelled_segments  # noqa: E402\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "2 broken" in result.stdout
    assert "engine.detectors.base is not allowed to import engine.detectors.registry" in result.stdout
    assert "engine.detectors is not allowed to import engine.classifiers" in result.stdout


def test_the_window_module_does_not_import_torch_so_the_window_paints_before_the_engine_loads():
    """The engine thread loads torch and the detectors after the window is drawn (`preload_engine`); a module
    of the window that imports the detector registry at the top pulls all of it in first (launch to first
    paint went from 1.7 s to 3.1 s that way)."""
    code = "import sys, app.main_window; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
