"""transformers' first import makes some hundred thousand objects, and a garbage collection on the GUI thread
during it crashed the window: every path that imports it first (the AST encoder of knn / patch_memory, ast_ae)
does so with the collector paused, also in a process without the window (whose collection runs in the GUI
thread only: tests/app/test_gui_gc.py). Each case runs in a
fresh interpreter, where transformers is not imported yet."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Prints whether the collector was on when transformers' AST module was imported by `FIRST`.
CHILD = textwrap.dedent("""
    import gc
    import sys

    AST = "transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer"
    seen = []


    class Watch:  # asked first for every module imported; finds none itself
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == AST:
                seen.append(gc.isenabled())


    sys.meta_path.insert(0, Watch)
    assert AST not in sys.modules
    FIRST
    print("collector on during the import:", seen[:1], "after:", gc.isenabled())
""")

FIRSTS = {
    "the AST encoder": (
        "from engine.encoders.ast import load_ast_model\n"
        "from engine.errors import EarmarkError\n"
        "try:\n    load_ast_model('/nowhere/ast')\nexcept EarmarkError:\n    pass"
    ),
    "ast_ae": (
        "from engine.detectors.registry import make_config, detector_class\n"
        "detector_class('ast_ae')(make_config('ast_ae', {'encoder': 'scratch'}))._build(None)"
    ),
}


@pytest.mark.parametrize("first", FIRSTS, ids=list(FIRSTS))
def test_the_first_import_of_transformers_runs_with_the_collector_paused(first):
    code = CHILD.replace("FIRST", FIRSTS[first])
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "collector on during the import: [False] after: True" in done.stdout
