"""One style for the whole code base: ruff's lint rules and its layout (configured in pyproject.toml) hold for
every file, so a change that drifts (an unused import, a misplaced one, a line past 120 characters, a zip
that silently drops items) fails here and not in a later review."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_code_passes_the_lint_rules():
    result = ruff("check", "--no-fix", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_laid_out_as_the_formatter_lays_it_out():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lint_catches_drift(tmp_path):
    drifted = tmp_path / "drifted.py"
    drifted.write_text("import os\nimport sys\n\n\ndef pairs(a, b):\n    return list(zip(a, b))\n")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-fix",
            "--output-format",
            "concise",
            "--config",
            str(REPO / "pyproject.toml"),
            str(drifted),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode != 0
    assert "F401" in result.stdout and "B905" in result.stdout
